# QEMU's lock errors when the file is a raw image in use (fuzz seed 10223). QEMU's raw node holds and shares what
# its drive does: a drive without a guest device shares everything and holds write only once a qemu-io write took
# it, so a qcow2 opener of the raw disk (which does not share write) gets in and fails on the header before that
# write and on "shared write" after it; a raw backing file shares write, so a qcow2 opener gets in and fails on the
# header. livemon refuses every writer of a raw image in use, with QEMU's message wherever QEMU refuses.
qemu-img create -q -f qcow2 file-A.img 1M
qemu-io -f qcow2 -c 'write -P 0xa1 0 64k' -c 'write -P 0xa2 512k 64k' file-A.img >/dev/null
qemu-img create -q -f raw spare.raw 1M
qemu-img create -q -f qcow2 -b spare.raw -F raw spare.qcow2 1M
