# raw A (1M, 0xa1 at 0) <- E (qcow2, 0xe1 at 512k).  (fuzz seed 3)
qemu-img create -q -f raw file-A.img 1M
qemu-io -f raw -c "write -P 0xa1 0 64k" file-A.img >/dev/null
qemu-img create -q -f qcow2 -b file-A.img -F raw file-E.img
qemu-io -c "write -P 0xe1 512k 64k" file-E.img >/dev/null
