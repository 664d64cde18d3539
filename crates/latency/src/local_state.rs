//! Where this checkout and the local stack's state are: the workspace root (the checkout with
//! `scripts/local`) and the directory `scripts/local` writes its state files to (`targets.toml`,
//! `queue.toml`). Used by `report --local`, `queue --local` and the local sweep's build.

use std::path::{Path, PathBuf};

use crate::error::Error;

/// Where `scripts/local` keeps its state: `$LOCAL_STACK_STATE` (as scripts/test sets it; the
/// old name `HITS_LOCAL_STATE` still works, with a warning, until the next release), else
/// `<checkout>/.local`.
pub(crate) fn local_state_dir(root: &Path) -> PathBuf {
    let set = |name| std::env::var_os(name).filter(|s| !s.is_empty());
    set("LOCAL_STACK_STATE")
        .or_else(|| {
            let old = set("HITS_LOCAL_STATE")?;
            eprintln!("warning: HITS_LOCAL_STATE is renamed LOCAL_STACK_STATE; the old name goes in the next release");
            Some(old)
        })
        .map_or_else(|| root.join(".local"), PathBuf::from)
}

/// The checkout this binary was built from, or the current directory's, whichever has
/// `scripts/local`.
pub(crate) fn workspace_root() -> Result<PathBuf, Error> {
    let built_from = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut candidates: Vec<PathBuf> =
        std::env::current_dir().map(|d| d.ancestors().map(Path::to_path_buf).collect()).unwrap_or_default();
    candidates.push(built_from);
    candidates.into_iter().find(|dir| dir.join("scripts/local").is_file()).ok_or_else(|| {
        Error::Invalid("--local needs a checkout of this repository (scripts/local not found)".into())
    })
}
