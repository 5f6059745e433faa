package io.livemon.block;

import static org.assertj.core.api.Assertions.assertThat;

import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;

/**
 * livemon's job state machine against QEMU 7.2's two tables in job.c, cell for cell: {@code JobSTT} (which state may
 * follow which) and {@code JobVerbTable} (in which states each verb is accepted). The rows are copied in QEMU's
 * column order (U, C, R, P, Y, S, W, D, X, E, N), so a difference names the cell.
 */
class JobTablesTest {
    /** QEMU's column order: undefined, created, running, paused, ready, standby, waiting, pending, aborting, ... */
    private static final JobStatus[] COLUMNS = {
        JobStatus.UNDEFINED, JobStatus.CREATED, JobStatus.RUNNING, JobStatus.PAUSED, JobStatus.READY,
        JobStatus.STANDBY, JobStatus.WAITING, JobStatus.PENDING, JobStatus.ABORTING, JobStatus.CONCLUDED,
        JobStatus.NULL,
    };

    @Test
    void transitionsAreQemusJobStt() {
        String[] stt = {
            /* U */ "0 1 0 0 0 0 0 0 0 0 0",
            /* C */ "0 0 1 0 0 0 0 0 1 0 1",
            /* R */ "0 0 0 1 1 0 1 0 1 0 0",
            /* P */ "0 0 1 0 0 0 0 0 0 0 0",
            /* Y */ "0 0 0 0 0 1 1 0 1 0 0",
            /* S */ "0 0 0 0 1 0 0 0 0 0 0",
            /* W */ "0 0 0 0 0 0 0 1 1 0 0",
            /* D */ "0 0 0 0 0 0 0 0 1 1 0",
            /* X */ "0 0 0 0 0 0 0 0 1 1 0",
            /* E */ "0 0 0 0 0 0 0 0 0 0 1",
            /* N */ "0 0 0 0 0 0 0 0 0 0 0",
        };
        List<String> differences = new ArrayList<>();
        for (int from = 0; from < COLUMNS.length; from++) {
            String[] cells = stt[from].split(" ");
            for (int to = 0; to < COLUMNS.length; to++) {
                boolean qemu = cells[to].equals("1");
                if (COLUMNS[from].canMoveTo(COLUMNS[to]) != qemu) {
                    differences.add(COLUMNS[from] + " -> " + COLUMNS[to] + " (QEMU: " + (qemu ? "allowed" : "not")
                            + ")");
                }
            }
        }
        assertThat(differences).isEmpty();
        assertThat(JobStatus.values()).containsExactlyInAnyOrder(COLUMNS);
    }

    @Test
    void verbsAreQemusJobVerbTable() {
        Object[][] table = {
            {JobVerb.CANCEL, "0 1 1 1 1 1 1 1 0 0 0"},
            {JobVerb.PAUSE, "0 1 1 1 1 1 0 0 0 0 0"},
            {JobVerb.RESUME, "0 1 1 1 1 1 0 0 0 0 0"},
            {JobVerb.SET_SPEED, "0 1 1 1 1 1 0 0 0 0 0"},
            {JobVerb.COMPLETE, "0 0 0 0 1 1 0 0 0 0 0"},
            {JobVerb.FINALIZE, "0 0 0 0 0 0 0 1 0 0 0"},
            {JobVerb.DISMISS, "0 0 0 0 0 0 0 0 0 1 0"},
        };
        List<String> differences = new ArrayList<>();
        for (Object[] row : table) {
            JobVerb verb = (JobVerb) row[0];
            String[] cells = ((String) row[1]).split(" ");
            for (int s = 0; s < COLUMNS.length; s++) {
                boolean qemu = cells[s].equals("1");
                if (verb.allowedIn(COLUMNS[s]) != qemu) {
                    differences.add(verb.qapiName() + " in " + COLUMNS[s] + " (QEMU: "
                            + (qemu ? "accepted" : "refused") + ")");
                }
            }
        }
        assertThat(differences).isEmpty();
        assertThat(table.length).isEqualTo(JobVerb.values().length);
    }

    @Test
    void aRefusedVerbGetsQemusMessage() {
        // job.c job_apply_verb_locked
        assertThat(BlockErrors.verbNotAllowed("job0", JobStatus.RUNNING, JobVerb.COMPLETE).getMessage())
                .isEqualTo("Job 'job0' in state 'running' cannot accept command verb 'complete'");
        assertThat(BlockErrors.verbNotAllowed("j", JobStatus.CONCLUDED, JobVerb.SET_SPEED).getMessage())
                .isEqualTo("Job 'j' in state 'concluded' cannot accept command verb 'set-speed'");
    }
}
