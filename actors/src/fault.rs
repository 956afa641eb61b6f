//! Faults injected into a running check, for tests and drills (`POST
//! /debug/fault`, served only when fault injection is enabled).

use actix::Message;

use crate::kind::ChildKind;

/// A fault to inject into a running check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Panic inside the actor's message handler.
    Panic,
    /// Stop handling anything, forever, as a deadlocked actor would.
    Hang,
}

/// Injects a fault into one check of one project (sent to the `Supervisor`).
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub struct InjectFault {
    pub project: String,
    pub child: ChildKind,
    pub fault: Fault,
}

/// Injects a fault into one check (sent to the project's `Environment`).
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "()")]
pub struct InjectEnvironmentFault {
    pub child: ChildKind,
    pub fault: Fault,
}

/// Injects a fault into a check's actor (sent to its `Ticker`).
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "()")]
pub struct InjectChildFault(pub Fault);
