//! CPython build flavours, and the variant names their installs go by.

use clap::ValueEnum;

#[derive(Clone, Copy, Default, PartialEq, Eq, Debug, ValueEnum)]
pub enum Flavor {
    /// `--with-pydebug --with-trace-refs`: the leak checker's interpreter.
    #[default]
    Debug,
    /// Free-threaded debug build, `--disable-gil --with-pydebug` (configure
    /// refuses trace refs without the GIL).
    Ft,
    /// Optimised, no `--with-pydebug` (and no PGO: it would triple the build).
    Release,
    /// Optimised `--with-trace-refs`, no `--with-pydebug`: the leak
    /// checker's fast interpreter, two to three times the debug flavour's
    /// speed, without its assertions.
    Trace,
}

impl Flavor {
    pub fn configure_args(self) -> &'static [&'static str] {
        match self {
            Flavor::Debug => &["--with-pydebug", "--with-trace-refs"],
            Flavor::Ft => &["--disable-gil", "--with-pydebug"],
            Flavor::Release => &[],
            Flavor::Trace => &["--with-trace-refs"],
        }
    }

    pub fn patched(self) -> Variant {
        Variant {
            flavor: self,
            vanilla: false,
        }
    }

    pub fn vanilla(self) -> Variant {
        Variant {
            flavor: self,
            vanilla: true,
        }
    }
}

/// One interpreter we build: a flavour, patched or stock.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Variant {
    pub flavor: Flavor,
    pub vanilla: bool,
}

impl Variant {
    /// The name of its `target/pythons` link and cache dir. The debug pair
    /// keeps the names it had before flavours existed, so old paths work.
    pub fn name(self) -> &'static str {
        match (self.flavor, self.vanilla) {
            (Flavor::Debug, false) => "debug",
            (Flavor::Debug, true) => "vanilla",
            (Flavor::Ft, false) => "ft",
            (Flavor::Ft, true) => "vanilla-ft",
            (Flavor::Release, false) => "release",
            (Flavor::Release, true) => "vanilla-release",
            (Flavor::Trace, false) => "trace",
            (Flavor::Trace, true) => "vanilla-trace",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique() {
        let mut names: Vec<_> = Flavor::value_variants()
            .iter()
            .flat_map(|f| [f.patched().name(), f.vanilla().name()])
            .collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), 2 * Flavor::value_variants().len());
    }
}
