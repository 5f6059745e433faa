package io.livemon.monitor;

import io.livemon.block.BlockException;

/** Runs one monitor command with its parsed arguments. */
@FunctionalInterface
public interface HmpHandler {
    void run(HmpSession session, ParsedArgs args) throws BlockException;
}
