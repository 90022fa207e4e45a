"""Browser end-to-end tests of the annotation app (Playwright + Debian's Chromium)."""
