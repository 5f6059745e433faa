# drive_backup -n onto the drive's own active image, named as a raw target (fuzz seed 10439). QEMU opens a raw node
# without taking permissions, then compares the sizes before it attaches the target: "Source and target image have
# different sizes". livemon refuses the raw writer of an image in use, but reports QEMU's size error first; with
# the same size it refuses with the lock error. Nothing is written.
qemu-img create -q -f qcow2 file-A.img 1970176
qemu-io -f qcow2 -c 'write -P 0xa1 36531 107017' file-A.img >/dev/null
qemu-img create -q -f raw spare.raw 1970176
