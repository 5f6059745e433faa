# A (1M, 0xa1 at 0) <- E; spare.qcow2 an existing 1M qcow2 without backing.  (reduced from fuzz seed 4041)
qemu-img create -q -f qcow2 file-A.img 1M
qemu-io -c "write -P 0xa1 0 64k" file-A.img >/dev/null
qemu-img create -q -f qcow2 -b file-A.img -F qcow2 file-E.img
qemu-img create -q -f qcow2 spare.qcow2 1M
