package io.livemon.cli;

import java.nio.file.Path;
import java.nio.file.Paths;

/**
 * The user's home directory as the shell has it: {@code $HOME} when set, else the JVM's {@code user.home} (which the
 * JVM takes from the password database and so ignores {@code HOME=... ./livemon}, where a user looks for the history).
 */
final class UserHome {
    private UserHome() {
    }

    static Path dir() {
        String home = System.getenv("HOME");
        return home != null && !home.isEmpty() ? Paths.get(home) : Paths.get(System.getProperty("user.home"));
    }
}
