# A (1M, 0xa1 at 0) <- E (0xe1 at 512k); over.qcow2 an existing 1M qcow2 with no backing file.  (fuzz seed 2066)
qemu-img create -q -f qcow2 file-A.img 1M
qemu-io -c "write -P 0xa1 0 64k" file-A.img >/dev/null
qemu-img create -q -f qcow2 -b file-A.img -F qcow2 file-E.img
qemu-io -c "write -P 0xe1 512k 64k" file-E.img >/dev/null
qemu-img create -q -f qcow2 over.qcow2 1M
