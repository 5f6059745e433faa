# A raw 1M disk full of 0xa3.  (fuzz seed 6284)
qemu-img create -q -f raw file-A.img 1M
qemu-io -f raw -c "write -P 0xa3 0 1M" file-A.img >/dev/null
