package io.livemon.cli;

import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;

/**
 * Points slf4j-simple at a log file before the first logger exists: logs never go to the terminal, where they
 * would tear the prompt. {@code LIVEMON_LOG} overrides the default {@code ~/.cache/livemon/livemon.log}.
 */
final class LogFile {
    private LogFile() {
    }

    static void configure() {
        String target = System.getenv("LIVEMON_LOG");
        if (target == null || target.isEmpty()) {
            Path dir = UserHome.dir().resolve(".cache").resolve("livemon");
            try {
                Files.createDirectories(dir);
                target = dir.resolve("livemon.log").toString();
            } catch (Exception e) {
                target = Paths.get(System.getProperty("java.io.tmpdir"), "livemon.log").toString();
            }
        }
        setDefault("org.slf4j.simpleLogger.logFile", target);
        setDefault("org.slf4j.simpleLogger.defaultLogLevel", "info");
        setDefault("org.slf4j.simpleLogger.showDateTime", "true");
        setDefault("org.slf4j.simpleLogger.dateTimeFormat", "yyyy-MM-dd'T'HH:mm:ss.SSS");
    }

    private static void setDefault(String key, String value) {
        if (System.getProperty(key) == null) {
            System.setProperty(key, value);
        }
    }
}
