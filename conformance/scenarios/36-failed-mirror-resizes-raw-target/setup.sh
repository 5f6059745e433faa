# A (64k) <- E (0xe1 at 0); empty.raw is an existing 0-byte raw file.  (fuzz seed 4)
qemu-img create -q -f qcow2 file-A.img 64k
qemu-img create -q -f qcow2 -b file-A.img -F qcow2 file-E.img
qemu-io -c "write -P 0xe1 0 4k" file-E.img >/dev/null
qemu-img create -q -f raw empty.raw 0
