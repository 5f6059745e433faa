# img/A <- img/B <- img/C, all 1M, backing strings relative to img/; B and C hold data.  (fuzz seeds 10, 15)
mkdir img
cd img
qemu-img create -q -f qcow2 file-A.img 1M
qemu-io -c "write -P 0xa1 0 64k" file-A.img >/dev/null
qemu-img create -q -f qcow2 -b file-A.img -F qcow2 file-B.img
qemu-io -c "write -P 0xb1 64k 64k" file-B.img >/dev/null
qemu-img create -q -f qcow2 -b file-B.img -F qcow2 file-C.img
qemu-io -c "write -P 0xc1 128k 64k" file-C.img >/dev/null
