//! Closed sets: an enum whose kebab-case strings are the wire format, with the one table that
//! maps each variant to its string. Every list, message and parse is derived from that table.

/// `closed_set! { /// doc  pub enum Name { Variant = "wire-name", … } }` defines the enum with
/// `ALL`, `as_str`, `parse`, `list` (for messages), `FromStr` and `Display`.
macro_rules! closed_set {
    (
        $(#[$meta:meta])*
        pub enum $name:ident {
            $( $(#[$vmeta:meta])* $variant:ident = $wire:literal, )+
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum $name {
            $( $(#[$vmeta])* $variant, )+
        }

        impl $name {
            /// Every member, in the order lists show them.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The string the database, the files and the command line use.
            pub fn as_str(self) -> &'static str {
                match self {
                    $( $name::$variant => $wire, )+
                }
            }

            pub fn parse(s: &str) -> Option<$name> {
                $name::ALL.iter().copied().find(|v| v.as_str() == s)
            }

            /// Every member's string, comma-separated, for messages.
            pub fn list() -> String {
                $name::ALL
                    .iter()
                    .map(|v| v.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            }
        }

        impl std::str::FromStr for $name {
            type Err = String;

            fn from_str(s: &str) -> Result<$name, String> {
                $name::parse(s).ok_or_else(|| {
                    format!("`{s}` is not one of: {}", $name::list())
                })
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

pub(crate) use closed_set;

#[cfg(test)]
mod tests {
    closed_set! {
        /// A test set.
        pub enum Colour {
            Red = "red",
            DarkBlue = "dark-blue",
        }
    }

    #[test]
    fn every_member_round_trips_through_its_string() {
        for c in Colour::ALL {
            assert_eq!(Colour::parse(c.as_str()), Some(*c));
            assert_eq!(c.to_string().parse::<Colour>(), Ok(*c));
        }
        assert_eq!(Colour::list(), "red, dark-blue");
        assert!(
            "blue"
                .parse::<Colour>()
                .unwrap_err()
                .contains("red, dark-blue")
        );
    }
}
