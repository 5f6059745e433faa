# A lone 0-byte qcow2 disk.  (fuzz seed 127)
qemu-img create -q -f qcow2 file-A.img 0
