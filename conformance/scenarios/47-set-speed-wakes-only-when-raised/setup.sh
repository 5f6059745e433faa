# block_job_set_speed on a throttled stream that sleeps for its rate limit: a lower or equal limit lets it sleep on,
# a higher one (or 0) ends the sleep, and the slice accounting credits the time since the slice began (QEMU 7.2's
# blockjob.c block_job_set_speed_locked and include/qemu/ratelimit.h). A plain number is MiB/s.
qemu-img create -q -f qcow2 file-A.img 64M
qemu-io -f qcow2 -c "write -P 0xaa 0 8M" file-A.img >/dev/null
qemu-img create -q -f qcow2 -b file-A.img -F qcow2 file-B.img
