"""Spend control: prices, the ledger, per-caller and global limits, usage and credits views."""
