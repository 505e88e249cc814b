//! Enums whose values have one name each, used alike in flags, configuration files and
//! reports. [`named_enum!`](crate::named_enum) declares such an enum once, with each
//! variant's name and doc comment; from that one definition come [`Named`] (the names,
//! the help text, parsing), `Display`, `FromStr` and serde's `Serialize`/`Deserialize`.
//! The command line (`crate::cli`) turns the same definition into clap's possible values,
//! so `--help`, `imgtest.toml` and the JSON report cannot disagree on a spelling.

/// An enum declared with [`named_enum!`](crate::named_enum).
pub trait Named: Sized + Copy + Eq + 'static {
    /// Every value, in declaration order.
    const ALL: &'static [Self];
    /// The value's name, as flags, configuration files and reports spell it.
    fn name(self) -> &'static str;
    /// What the value means: its doc comment.
    fn help(self) -> &'static str;
    /// The value named `name`.
    fn from_name(name: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|v| v.name() == name)
    }
    /// Every name, joined for a message: `a, b or c`.
    fn names() -> String {
        let names: Vec<&str> = Self::ALL.iter().map(|v| v.name()).collect();
        match names.split_last() {
            Some((last, rest)) if !rest.is_empty() => format!("{} or {last}", rest.join(", ")),
            _ => names.join(""),
        }
    }
}

/// A name that no value of the enum has.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what} `{given}` (expected {expected})")]
pub struct UnknownName {
    /// What kind of value was asked for (`disk bus`).
    pub what: &'static str,
    /// The name given.
    pub given: String,
    /// The names there are.
    pub expected: String,
}

/// Parses `s` as a value of `T`; the error names `what` and every valid name.
pub fn parse<T: Named>(s: &str, what: &'static str) -> Result<T, UnknownName> {
    T::from_name(s).ok_or_else(|| UnknownName {
        what,
        given: s.to_string(),
        expected: T::names(),
    })
}

/// Declares an enum whose variants each have a name (see [`crate::named`]):
///
/// ```ignore
/// named_enum! {
///     /// The bus the main disk hangs on.
///     pub enum DiskBus("disk bus") {
///         /// virtio-blk-pci (what most clouds expose).
///         Virtio = "virtio",
///         /// Emulated IDE.
///         Ide = "ide",
///     }
/// }
/// ```
///
/// The string after the enum's name says what a value is, for error messages. Variants
/// may carry other attributes besides their docs (`#[default]` with `#[derive(Default)]`).
#[macro_export]
macro_rules! named_enum {
    (
        $(#[$meta:meta])*
        $vis:vis enum $name:ident($what:literal) {
            $( $(#$vattr:tt)* $variant:ident = $text:literal ),+ $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        $vis enum $name {
            $( $(#$vattr)* $variant ),+
        }

        impl $crate::named::Named for $name {
            const ALL: &'static [Self] = &[$($name::$variant),+];
            fn name(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
            fn help(self) -> &'static str {
                match self {
                    $($name::$variant => concat!($($crate::__doc_text!($vattr)),*).trim_ascii()),+
                }
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.pad($crate::named::Named::name(*self))
            }
        }

        impl ::std::str::FromStr for $name {
            type Err = $crate::named::UnknownName;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                $crate::named::parse(s, $what)
            }
        }

        impl ::serde::Serialize for $name {
            fn serialize<S: ::serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str($crate::named::Named::name(*self))
            }
        }

        impl<'de> ::serde::Deserialize<'de> for $name {
            fn deserialize<D: ::serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = <::std::borrow::Cow<'de, str> as ::serde::Deserialize>::deserialize(d)?;
                s.parse().map_err(::serde::de::Error::custom)
            }
        }
    };
}

/// The text of a `#[doc = "..."]` attribute, nothing for any other attribute: how
/// [`named_enum!`](crate::named_enum) finds a variant's help among its attributes.
#[doc(hidden)]
#[macro_export]
macro_rules! __doc_text {
    ([doc = $text:literal]) => {
        $text
    };
    ([$($other:tt)*]) => {
        ""
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    named_enum! {
        /// A test enum.
        #[derive(Default)]
        enum Colour("colour") {
            /// The colour of the sky.
            #[default]
            Blue = "blue",
            /// Of grass,
            /// in spring.
            Green = "light-green",
        }
    }

    #[test]
    fn one_definition_gives_names_help_parsing_and_serde() {
        assert_eq!(Colour::ALL, [Colour::Blue, Colour::Green]);
        assert_eq!(Colour::default(), Colour::Blue);
        assert_eq!(Colour::Blue.help(), "The colour of the sky.");
        assert_eq!(Colour::Green.name(), "light-green");
        assert_eq!(Colour::Green.to_string(), "light-green");
        assert_eq!(format!("[{:<6}]", Colour::Blue), "[blue  ]");
        assert_eq!(Colour::Green.help(), "Of grass, in spring.");
        assert_eq!("blue".parse::<Colour>(), Ok(Colour::Blue));
        assert_eq!(
            "red".parse::<Colour>().unwrap_err().to_string(),
            "unknown colour `red` (expected blue or light-green)"
        );
        assert_eq!(
            serde_json::to_string(&Colour::Green).unwrap(),
            "\"light-green\""
        );
        assert_eq!(
            serde_json::from_str::<Colour>("\"blue\"").unwrap(),
            Colour::Blue
        );
        let e = toml::from_str::<std::collections::BTreeMap<String, Colour>>("c = \"red\"")
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown colour `red`"), "{e}");
    }
}
