//! Interface description (generated).
