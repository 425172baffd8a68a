//! Load errors that point at the file, the document, the object and the field.

use std::fmt;

/// Where an object came from: the file, the 1-based document index in it, the line the
/// document starts on, and for `kind: List` the item index.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Origin {
    /// The file path as given (or `<stdin>`, or `<builtin>/…` for embedded examples).
    pub file: String,
    /// 1-based document index within the file.
    pub document: usize,
    /// 1-based line on which the document starts.
    pub line: usize,
    /// Index in the `items` of a `kind: List`, when the object came from one.
    pub item: Option<usize>,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Document 0 is the file itself (it could not be read, or held nothing).
        if self.document == 0 {
            return f.write_str(&self.file);
        }
        write!(
            f,
            "{}: document {} (line {})",
            self.file, self.document, self.line
        )?;
        if let Some(item) = self.item {
            write!(f, ", items[{item}]")?;
        }
        Ok(())
    }
}

/// One problem with the input, with everything a user needs to find it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoadError {
    /// File, document and item.
    pub origin: Origin,
    /// `Kind namespace/name` of the object, when it could be read.
    pub object: Option<String>,
    /// Field path inside the object (`spec.ingress[0].ports[1].endPort`), when known.
    pub field: Option<String>,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.origin)?;
        if let Some(object) = &self.object {
            write!(f, ": {object}")?;
        }
        if let Some(field) = &self.field {
            write!(f, ": {field}")?;
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for LoadError {}

/// Every error found while loading; loading goes on past the first bad document so that a
/// user sees all problems at once.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LoadErrors(pub Vec<LoadError>);

impl fmt::Display for LoadErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, error) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "error: {error}")?;
        }
        Ok(())
    }
}

impl std::error::Error for LoadErrors {}
