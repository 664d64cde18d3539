//! Lambda's instruction set architectures, arm64 and x86_64: how they are spelt, parsed, and which
//! GB-second price each uses.

use std::fmt;
use std::str::FromStr;

use serde::Deserialize;

use crate::CostError;

/// Lambda instruction set architecture; arm64 (Graviton) is about 20% cheaper per GB-second.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
pub enum Arch {
    /// Intel/AMD.
    #[serde(rename = "x86_64")]
    X86_64,
    /// Graviton.
    #[serde(rename = "arm64")]
    Arm64,
}

impl Arch {
    /// The price key of a GB-second on this architecture.
    pub fn price_key(self) -> &'static str {
        match self {
            Arch::X86_64 => "lambda.gb_second_x86_64",
            Arch::Arm64 => "lambda.gb_second_arm64",
        }
    }

    /// `x86_64` or `arm64`, as Lambda spells them.
    pub fn as_str(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86_64",
            Arch::Arm64 => "arm64",
        }
    }
}

impl fmt::Display for Arch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Arch {
    type Err = CostError;

    /// Accepts `x86_64` / `amd64` / `x86-64` and `arm64` / `aarch64`.
    fn from_str(s: &str) -> Result<Arch, CostError> {
        match s.to_ascii_lowercase().as_str() {
            "x86_64" | "x86-64" | "amd64" => Ok(Arch::X86_64),
            "arm64" | "aarch64" => Ok(Arch::Arm64),
            _ => {
                Err(CostError::InvalidParam { name: "arch", reason: format!("`{s}` is not x86_64 or arm64") })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arch_parses_the_usual_spellings() {
        assert_eq!("arm64".parse::<Arch>(), Ok(Arch::Arm64));
        assert_eq!("aarch64".parse::<Arch>(), Ok(Arch::Arm64));
        assert_eq!("x86_64".parse::<Arch>(), Ok(Arch::X86_64));
        assert_eq!("AMD64".parse::<Arch>(), Ok(Arch::X86_64));
        assert!("sparc".parse::<Arch>().is_err());
    }
}
