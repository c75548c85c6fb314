//! [`Shared`]: how the config holds each object, so that copying a config
//! and comparing two copies costs a pointer per object, not the object.
//!
//! A transaction edits a copy of the running config, the daemon compares
//! the result with what runs, the compiler and the journal look for what
//! changed: at 10,000 tunnels each of those deep copies or `memcmp`s was
//! milliseconds. With every object behind an `Arc`, a copy shares them all,
//! an edit copies the one object it changes (`Arc::make_mut`, on the first
//! mutable access), and two copies of an unchanged object compare equal by
//! pointer before any field is read.
//!
//! Reading goes through `Deref`, so `config.tunnels[i].vni` reads as it did
//! with plain values; serde sees the object itself (the JSON and TOML forms
//! are unchanged).

use std::fmt;
use std::ops::{Deref, DerefMut, Range};
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// One config object, shared between copies of the config until one of
/// them changes it.
#[derive(Default)]
pub struct Shared<T>(Arc<T>);

impl<T> Shared<T> {
    pub fn new(value: T) -> Self {
        Shared(Arc::new(value))
    }

    /// True when both are the same allocation: one was copied from the
    /// other and neither has been changed since.
    pub fn same(a: &Self, b: &Self) -> bool {
        Arc::ptr_eq(&a.0, &b.0)
    }

    /// The object's address: two copies of a config hold an unchanged
    /// object at the same one.
    pub fn as_ptr(this: &Self) -> *const T {
        Arc::as_ptr(&this.0)
    }

    /// [`Shared::same`] item by item: the list was copied and no item
    /// added, removed, moved or changed since.
    pub fn all_same(a: &[Self], b: &[Self]) -> bool {
        a.len() == b.len() && a.iter().zip(b).all(|(x, y)| Shared::same(x, y))
    }
}

impl<T: Clone> Shared<T> {
    /// The object itself, copied out only if another config still shares it.
    pub fn into_inner(self) -> T {
        Arc::unwrap_or_clone(self.0)
    }
}

impl<T> Clone for Shared<T> {
    fn clone(&self) -> Self {
        Shared(Arc::clone(&self.0))
    }
}

impl<T> Deref for Shared<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

/// Writing copies the object first when another config shares it: the
/// other copy (the running config, say) keeps what it had.
impl<T: Clone> DerefMut for Shared<T> {
    fn deref_mut(&mut self) -> &mut T {
        Arc::make_mut(&mut self.0)
    }
}

impl<T> From<T> for Shared<T> {
    fn from(value: T) -> Self {
        Shared::new(value)
    }
}

impl<T: PartialEq> PartialEq for Shared<T> {
    fn eq(&self, other: &Self) -> bool {
        Shared::same(self, other) || *self.0 == *other.0
    }
}

impl<T: Eq> Eq for Shared<T> {}

impl<T: PartialEq> PartialEq<T> for Shared<T> {
    fn eq(&self, other: &T) -> bool {
        *self.0 == *other
    }
}

impl<T: fmt::Debug> fmt::Debug for Shared<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl<T: Serialize> Serialize for Shared<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Shared<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        T::deserialize(d).map(Shared::new)
    }
}

/// Where two lists differ: `old[.0]` became `new[.1]`, everything before
/// and after equal and in the same order. Elements are compared with `==`
/// from both ends: for lists of [`Shared`] objects an unchanged one costs a
/// pointer comparison. The revalidation and the state journal both find a
/// transaction's change this way.
pub fn changed_span<T: PartialEq>(old: &[T], new: &[T]) -> (Range<usize>, Range<usize>) {
    let pre = old.iter().zip(new).take_while(|(a, b)| a == b).count();
    let room = old.len().min(new.len()) - pre;
    let suf = old
        .iter()
        .rev()
        .zip(new.iter().rev())
        .take(room)
        .take_while(|(a, b)| a == b)
        .count();
    (pre..old.len() - suf, pre..new.len() - suf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_copy_shares_until_written() {
        let a = Shared::new(vec![1, 2]);
        let mut b = a.clone();
        assert!(Shared::same(&a, &b));
        assert_eq!(a, b);
        b.push(3);
        assert!(!Shared::same(&a, &b));
        assert_eq!(*a, [1, 2]);
        assert_eq!(*b, [1, 2, 3]);
        // Equal by value when not by pointer.
        assert_eq!(Shared::new(vec![1, 2]), a);
    }

    #[test]
    fn changed_span_is_what_lies_between_the_common_ends() {
        assert_eq!(changed_span(&[1, 2, 3], &[1, 2, 3]), (3..3, 3..3));
        assert_eq!(changed_span(&[1, 2, 3], &[1, 9, 3]), (1..2, 1..2));
        assert_eq!(changed_span(&[1, 2, 3], &[1, 3]), (1..2, 1..1));
        assert_eq!(changed_span(&[1, 3], &[1, 2, 3]), (1..1, 1..2));
        // Prefix first: an element is never counted in both ends.
        assert_eq!(changed_span(&[1, 1], &[1]), (1..2, 1..1));
    }

    #[test]
    fn serde_sees_the_object() {
        let a = Shared::new(vec![1u8, 2]);
        let json = serde_json::to_string(&a).unwrap();
        assert_eq!(json, "[1,2]");
        let b: Shared<Vec<u8>> = serde_json::from_str(&json).unwrap();
        assert_eq!(a, b);
    }
}
