//! placeholder: the B+-tree
