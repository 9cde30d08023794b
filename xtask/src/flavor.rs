//! CPython build flavours, and the variant names their installs go by.

use clap::ValueEnum;

use crate::pin::Release;

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
    /// As spelled on the command line.
    pub fn name(self) -> String {
        self.to_possible_value()
            .map_or_else(String::new, |v| v.get_name().to_string())
    }

    pub fn configure_args(self) -> &'static [&'static str] {
        match self {
            Flavor::Debug => &["--with-pydebug", "--with-trace-refs"],
            Flavor::Ft => &["--disable-gil", "--with-pydebug"],
            Flavor::Release => &[],
            Flavor::Trace => &["--with-trace-refs"],
        }
    }

    pub fn patched(self, python: &'static Release) -> Variant {
        Variant {
            flavor: self,
            vanilla: false,
            python,
        }
    }

    pub fn vanilla(self, python: &'static Release) -> Variant {
        Variant {
            flavor: self,
            vanilla: true,
            python,
        }
    }
}

/// One interpreter we build: a flavour of a release, patched or stock.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Variant {
    pub flavor: Flavor,
    pub vanilla: bool,
    pub python: &'static Release,
}

impl Variant {
    /// The name of its `target/pythons` link and cache dir: the default
    /// release's go without a version (`debug`), others with it
    /// (`debug-3.13.5`). The debug pair keeps the names it had before
    /// flavours existed, so old paths work.
    pub fn name(self) -> String {
        let base = match (self.flavor, self.vanilla) {
            (Flavor::Debug, false) => "debug",
            (Flavor::Debug, true) => "vanilla",
            (Flavor::Ft, false) => "ft",
            (Flavor::Ft, true) => "vanilla-ft",
            (Flavor::Release, false) => "release",
            (Flavor::Release, true) => "vanilla-release",
            (Flavor::Trace, false) => "trace",
            (Flavor::Trace, true) => "vanilla-trace",
        };
        match self.python.is_default() {
            true => base.to_string(),
            false => format!("{base}-{}", self.python.version),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pin::RELEASES;

    #[test]
    fn names_are_unique() {
        let mut names: Vec<_> = Flavor::value_variants()
            .iter()
            .flat_map(|f| RELEASES.iter().flat_map(|r| [f.patched(r), f.vanilla(r)]))
            .map(Variant::name)
            .collect();
        assert_eq!(names[0], "debug");
        names.sort();
        names.dedup();
        assert_eq!(
            names.len(),
            2 * RELEASES.len() * Flavor::value_variants().len()
        );
    }
}
