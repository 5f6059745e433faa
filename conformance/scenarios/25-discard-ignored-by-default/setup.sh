# A (1M, 0xa1 everywhere) <- E (512-byte clusters, 0xb1 over the first 128k).  (fuzz seed 38)
qemu-img create -q -f qcow2 file-A.img 1M
qemu-io -c "write -P 0xa1 0 1M" file-A.img >/dev/null
qemu-img create -q -f qcow2 -o cluster_size=512 -b file-A.img -F qcow2 file-E.img
qemu-io -c "write -P 0xb1 0 128k" file-E.img >/dev/null
