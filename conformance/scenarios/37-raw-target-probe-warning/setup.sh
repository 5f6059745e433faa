# A (1M, 0xa1 at 0) <- E (0xe1 at 512k); copy.raw an existing 1M raw file.  (fuzz seeds 161, 41)
qemu-img create -q -f qcow2 file-A.img 1M
qemu-io -c "write -P 0xa1 0 64k" file-A.img >/dev/null
qemu-img create -q -f qcow2 -b file-A.img -F qcow2 file-E.img
qemu-io -c "write -P 0xe1 512k 64k" file-E.img >/dev/null
qemu-img create -q -f raw copy.raw 1M
