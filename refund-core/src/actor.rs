//! Who acts: the name the journal records for a refund's requester and a
//! review's resolver.

use std::fmt;

use serde::Serialize;

/// Longest actor name accepted, in characters.
pub const MAX_ACTOR_CHARS: usize = 64;

/// Who performed an action: an operator's user name, a service account, or
/// one of the system's own actors ([`Actor::webhook`], [`Actor::sweep`]).
///
/// The journal records it as a refund's `requested_by` and a review's
/// `resolved_by`, and the API shows it, so it is a name, never a secret:
/// 1 to 64 characters, no control characters, no leading or trailing
/// blanks.
#[derive(Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct Actor(String);

/// Why a name cannot be an [`Actor`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("an actor name is 1 to {MAX_ACTOR_CHARS} characters without control characters or surrounding blanks")]
pub struct InvalidActor;

impl Actor {
    /// The actor of journal writes caused by a gateway webhook.
    pub const WEBHOOK: &'static str = "webhook";
    /// The actor of journal writes made by the background sweep.
    pub const SWEEP: &'static str = "sweep";

    /// An actor named `name`, checked (see the type's rules).
    pub fn new(name: impl Into<String>) -> Result<Self, InvalidActor> {
        let name = name.into();
        let chars = name.chars().count();
        if chars == 0
            || chars > MAX_ACTOR_CHARS
            || name.chars().any(char::is_control)
            || name.trim() != name
        {
            return Err(InvalidActor);
        }
        Ok(Actor(name))
    }

    /// The system actor of webhook-caused writes, [`Actor::WEBHOOK`].
    pub fn webhook() -> Self {
        Actor(Self::WEBHOOK.to_owned())
    }

    /// The system actor of the background sweep, [`Actor::SWEEP`].
    pub fn sweep() -> Self {
        Actor(Self::SWEEP.to_owned())
    }

    /// Wraps a name read back from storage (checked when it was written).
    pub fn from_stored(name: impl Into<String>) -> Self {
        Actor(name.into())
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Actor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Actor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Actor({:?})", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked() {
        assert_eq!(Actor::new("kim.support").unwrap().as_str(), "kim.support");
        assert!(Actor::new("운영자").is_ok());
        assert!(Actor::new("x".repeat(MAX_ACTOR_CHARS)).is_ok());
        for bad in [
            "",
            " admin",
            "admin ",
            "a\nb",
            &"x".repeat(MAX_ACTOR_CHARS + 1),
        ] {
            assert_eq!(Actor::new(bad), Err(InvalidActor), "{bad:?}");
        }
    }
}
