# A single 4M image with data, nothing beneath it.  (fuzz seeds 14, 19)
qemu-img create -q -f qcow2 file-A.img 4M
qemu-io -c "write -P 0xa1 0 1M" file-A.img >/dev/null
