//! What the parsed indexes of one kernel mean together: names and aliases
//! resolved to modules, and the files to load for a module, in order.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use super::{
    fnmatch, name_of, normalize, parse_alias, parse_builtin, parse_builtin_aliases, parse_dep,
    parse_softdep, KmodError, ALIAS, BUILTIN, BUILTIN_MODINFO, DEP, SOFTDEP,
};

/// Why [`ModuleIndex::load`] failed: the caller's read, or the text.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LoadError<E: std::error::Error + 'static> {
    #[error(transparent)]
    Read(E),
    #[error("{0} is missing")]
    Missing(&'static str),
    #[error(transparent)]
    Index(#[from] KmodError),
}

/// The texts of one kernel's index files; an absent file is empty.
#[derive(Debug, Clone, Copy, Default)]
pub struct IndexFiles<'a> {
    pub dep: &'a str,
    pub alias: &'a str,
    pub softdep: &'a str,
    pub builtin: &'a str,
    pub builtin_modinfo: &'a [u8],
}

#[derive(Debug)]
struct Module {
    path: String,
    deps: Vec<String>,
}

/// One kernel's modules: every name `_`-normalised.
#[derive(Debug, Default)]
pub struct ModuleIndex {
    modules: BTreeMap<String, Module>,
    builtin: BTreeSet<String>,
    /// (normalised glob, module), in file order; built-in aliases last.
    aliases: Vec<(String, String)>,
    /// Each glob's literal prefix (up to its first wildcard) → its indexes in
    /// `aliases`. A modalias can only match globs whose prefix it starts
    /// with: [`ModuleIndex::matching`] tries those instead of every glob,
    /// which under emulation was a visible part of the boot (thousands of
    /// globs for each of a PC's devices).
    by_prefix: HashMap<String, Vec<usize>>,
    /// Every line of a module merged: (pre, post).
    softdeps: BTreeMap<String, (Vec<String>, Vec<String>)>,
}

impl ModuleIndex {
    /// The index of one kernel's files, as `read` gives them by name
    /// (`modules.dep`...; `None` when absent): the builder reads the host's,
    /// the agent the CD's. Only modules.dep must be there.
    pub fn load<E: std::error::Error + 'static>(
        mut read: impl FnMut(&'static str) -> Result<Option<Vec<u8>>, E>,
    ) -> Result<ModuleIndex, LoadError<E>> {
        let mut text = |file: &'static str| -> Result<Option<String>, LoadError<E>> {
            match read(file).map_err(LoadError::Read)? {
                None => Ok(None),
                Some(bytes) => String::from_utf8(bytes).map(Some).map_err(|_| {
                    LoadError::Index(KmodError { file, line: 0, message: "not UTF-8".into() })
                }),
            }
        };
        let dep = text(DEP)?.ok_or(LoadError::Missing(DEP))?;
        let alias = text(ALIAS)?.unwrap_or_default();
        let softdep = text(SOFTDEP)?.unwrap_or_default();
        let builtin = text(BUILTIN)?.unwrap_or_default();
        let builtin_modinfo = read(BUILTIN_MODINFO).map_err(LoadError::Read)?.unwrap_or_default();
        let files = IndexFiles {
            dep: &dep,
            alias: &alias,
            softdep: &softdep,
            builtin: &builtin,
            builtin_modinfo: &builtin_modinfo,
        };
        Ok(ModuleIndex::parse(&files)?)
    }

    pub fn parse(files: &IndexFiles) -> Result<ModuleIndex, KmodError> {
        let mut index = ModuleIndex::default();
        for line in parse_dep(files.dep)? {
            let deps = line.deps.iter().filter_map(|d| name_of(d)).collect();
            index.modules.insert(line.name(), Module { path: line.path, deps });
        }
        index.builtin = parse_builtin(files.builtin)?.into_iter().collect();
        let builtin_aliases = parse_builtin_aliases(files.builtin_modinfo);
        let mut seen = HashSet::new();
        for a in parse_alias(files.alias)?.into_iter().chain(builtin_aliases) {
            let entry = (normalize(&a.pattern), normalize(&a.module));
            if seen.insert(entry.clone()) {
                let prefix = literal_prefix(&entry.0).to_string();
                index.by_prefix.entry(prefix).or_default().push(index.aliases.len());
                index.aliases.push(entry);
            }
        }
        for s in parse_softdep(files.softdep)? {
            let (pre, post) = index.softdeps.entry(normalize(&s.module)).or_default();
            pre.extend(s.pre);
            post.extend(s.post);
        }
        Ok(index)
    }

    /// Every loadable module's name, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.modules.keys().map(String::as_str)
    }

    /// A module's path as modules.dep writes it (relative to the directory).
    pub fn path(&self, name: &str) -> Option<&str> {
        self.modules.get(&normalize(name)).map(|m| m.path.as_str())
    }

    pub fn is_builtin(&self, name: &str) -> bool {
        self.builtin.contains(&normalize(name))
    }

    /// Modules (loadable or built in) whose alias glob matches `modalias`,
    /// deduplicated, in file order.
    pub fn matching(&self, modalias: &str) -> Vec<String> {
        let text = normalize(modalias);
        let mut candidates: Vec<usize> = (0..=text.len())
            .filter(|&end| text.is_char_boundary(end))
            .filter_map(|end| self.by_prefix.get(&text[..end]))
            .flatten()
            .copied()
            .collect();
        // File order, as modprobe tries them.
        candidates.sort_unstable();
        let mut out: Vec<String> = Vec::new();
        for (pattern, module) in candidates.into_iter().map(|i| &self.aliases[i]) {
            if fnmatch(pattern.as_bytes(), text.as_bytes()) && !out.contains(module) {
                out.push(module.clone());
            }
        }
        out
    }

    /// A name as `modprobe NAME` takes it: the module itself (loadable or
    /// built in), else the modules its alias stands for (`fs-ext4`,
    /// `crypto-crc32c`, which names alternatives). Empty when unknown.
    pub fn resolve(&self, name: &str) -> Vec<String> {
        let n = normalize(name);
        if self.modules.contains_key(&n) || self.builtin.contains(&n) {
            return vec![n];
        }
        self.matching(name)
    }

    /// The files to load for `name`, relative to the modules directory, in
    /// load order: soft `pre:` modules, dependencies (theirs first), the
    /// module, soft `post:` modules. Built-in and unknown names give none.
    pub fn closure(&self, name: &str) -> Vec<&str> {
        let mut order = Vec::new();
        self.visit(&normalize(name), &mut BTreeSet::new(), &mut order);
        order
    }

    fn visit<'a>(&'a self, name: &str, seen: &mut BTreeSet<String>, order: &mut Vec<&'a str>) {
        if !seen.insert(name.to_string()) {
            return;
        }
        let (pre, post) =
            self.softdeps.get(name).map(|(a, b)| (&a[..], &b[..])).unwrap_or_default();
        // A soft dependency this kernel lacks is no error for kmod either
        // (often it is built in).
        for p in pre.iter().flat_map(|p| self.resolve(p)) {
            self.visit(&p, seen, order);
        }
        if let Some(module) = self.modules.get(name) {
            // modules.dep lists the full transitive set; visiting each one
            // still orders a dependency's own dependencies before it.
            for d in module.deps.iter().rev() {
                self.visit(d, seen, order);
            }
            order.push(&module.path);
        }
        for p in post.iter().flat_map(|p| self.resolve(p)) {
            self.visit(&p, seen, order);
        }
    }
}

/// A glob's text before its first wildcard (`*`, `?`, `[`) or escape.
fn literal_prefix(pattern: &str) -> &str {
    pattern.find(['*', '?', '[', '\\']).map_or(pattern, |i| &pattern[..i])
}
