//! The customer file as a pure, synchronous decision model:
//! `decide(state, command) -> events` and `evolve(state, event) -> state`.
//! No I/O, no clock: anything time-dependent is passed in.

mod classes;
mod customer;
mod values;

pub use classes::*;
pub use customer::*;
pub use values::*;
