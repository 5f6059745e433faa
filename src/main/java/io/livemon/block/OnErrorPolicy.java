package io.livemon.block;

import java.util.Locale;

/** What a job does when an I/O request fails ({@code on-error}). */
public enum OnErrorPolicy {
    REPORT, IGNORE, ENOSPC, STOP, AUTO;

    public String qapiName() {
        return name().toLowerCase(Locale.ROOT);
    }

    public static OnErrorPolicy fromQapi(String s) {
        for (OnErrorPolicy p : values()) {
            if (p.qapiName().equals(s)) {
                return p;
            }
        }
        return null;
    }
}
