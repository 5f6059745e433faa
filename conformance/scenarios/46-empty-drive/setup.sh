# A drive without a file (-drive if=none,id=cd0): QEMU opens it empty, as a medium-less removable drive.
qemu-img create -q -f qcow2 file-A.img 1M
