//! Canned upstream answers and health states for rule tests: no network at all.
