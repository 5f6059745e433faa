# A raw image, opened by -drive without a format.  (fuzz seed 6114)
qemu-img create -q -f raw file-A.img 1M
qemu-io -f raw -c "write -P 0xa1 0 64k" file-A.img >/dev/null
