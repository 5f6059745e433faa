# drive_backup (sync top) whose target is named exactly as the source's backing file, after a snapshot into the
# working directory (fuzz seed 10289): QEMU's bdrv_img_create compares the two strings before it opens the backing
# file, so the error is "Trying to create an image with the same filename as the backing file", not the failed
# open of a backing name resolved from the target's directory. Nothing is created or changed.
mkdir img
cd img
qemu-img create -q -f qcow2 -o cluster_size=65536 file-A.img 524288
qemu-io -f qcow2 -c 'write -P 0xa1 316416 31232' -c 'write -P 0xa2 393728 65536' file-A.img >/dev/null
cd ..
