//! The command lines of the three tools: clap's types, turning flags into the library's
//! plans, drawing progress and reports on the terminal, adding the flag hints to the
//! library's errors, and mapping results to exit codes ([`crate::exit`]). This is the only
//! module that knows a flag's name or prints; `src/bin/` holds one-line `main`s.

pub mod fsmaker;
pub mod imgtest;
mod live;
pub mod sparsecopy;

/// Makes enums declared with [`named_enum!`](crate::named_enum) flag values: clap's
/// `ValueEnum` over the enum's one list of names, each with its doc comment as help, so
/// `--help` shows the possible values and the configuration file spells them the same.
macro_rules! value_enum {
    ($($t:ty),+ $(,)?) => {
        $(
            impl clap::ValueEnum for $t {
                fn value_variants<'a>() -> &'a [Self] {
                    <$t as $crate::named::Named>::ALL
                }
                fn to_possible_value(&self) -> Option<clap::builder::PossibleValue> {
                    use $crate::named::Named;
                    Some(clap::builder::PossibleValue::new(self.name()).help(self.help()))
                }
            }
        )+
    };
}
pub(crate) use value_enum;
