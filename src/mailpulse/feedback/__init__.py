"""What comes back from outside (bounces, complaints, opens, clicks, unsubscribes), turned into
lifecycle events appended to the log; nothing here calls upstream code."""
