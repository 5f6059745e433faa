# A <- E (1M qcow2, data in both); spare.raw an existing 1M raw file.  (fuzz seed 6239)
qemu-img create -q -f qcow2 file-A.img 1M
qemu-io -c "write -P 0xa1 0 64k" file-A.img >/dev/null
qemu-img create -q -f qcow2 -b file-A.img -F qcow2 file-E.img
qemu-io -c "write -P 0xe1 64k 64k" file-E.img >/dev/null
qemu-img create -q -f raw spare.raw 1M
qemu-io -f raw -c "write -P 0x5b 0 64k" spare.raw >/dev/null
