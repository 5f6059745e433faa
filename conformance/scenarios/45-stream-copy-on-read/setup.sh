# A (2M of 0xa1) <- E (empty).  (fuzz seeds 6698, 6861)
qemu-img create -q -f qcow2 file-A.img 2M
qemu-io -c "write -P 0xa1 0 2M" file-A.img >/dev/null
qemu-img create -q -f qcow2 -b file-A.img -F qcow2 file-E.img
