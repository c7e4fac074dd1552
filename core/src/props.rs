//! Named properties of a backup restorer, mirroring `IWMBackupRestoreProps`.

use std::path::{Path, PathBuf};

use crate::error::{Error, ErrorCode, Result};
use crate::interface::{self, Type};

/// The type of a property's value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ValueType {
    /// A UTF-8 string.
    String,
    /// An unsigned 32-bit integer.
    U32,
    /// A boolean.
    Bool,
}

impl ValueType {
    /// The type's name in the interface description (`"string"`, `"u32"`, `"bool"`).
    pub const fn name(self) -> &'static str {
        match self {
            ValueType::String => "string",
            ValueType::U32 => "u32",
            ValueType::Bool => "bool",
        }
    }
}

/// A property value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PropertyValue {
    /// A string value (paths).
    String(String),
    /// An unsigned 32-bit value (counts).
    U32(u32),
    /// A boolean value.
    Bool(bool),
}

impl PropertyValue {
    /// The type of this value.
    pub fn value_type(&self) -> ValueType {
        match self {
            PropertyValue::String(_) => ValueType::String,
            PropertyValue::U32(_) => ValueType::U32,
            PropertyValue::Bool(_) => ValueType::Bool,
        }
    }
}

macro_rules! properties {
    ($( $variant:ident = $name:literal : $ty:ident ($spec:expr), $desc:literal; )*) => {
        /// A known property name.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum Property {
            $( #[doc = $desc] $variant, )*
        }

        impl Property {
            /// Every known property.
            pub const ALL: &'static [Property] = &[ $( Property::$variant, )* ];

            /// The property's name, as passed to [`Properties::set`].
            pub const fn name(self) -> &'static str {
                match self { $( Property::$variant => $name, )* }
            }

            /// The type of value the property takes.
            pub const fn value_type(self) -> ValueType {
                match self { $( Property::$variant => ValueType::$ty, )* }
            }

            /// The values the property takes: its type with its limits.
            pub const fn spec(self) -> Type {
                match self { $( Property::$variant => $spec, )* }
            }

            /// A one-line description of the property.
            pub const fn description(self) -> &'static str {
                match self { $( Property::$variant => $desc, )* }
            }

            /// Whether the property names a folder (its values are paths).
            pub fn is_path(self) -> bool {
                matches!(self.spec(), Type::Text { .. }) && self.value_type() == ValueType::String
            }

            /// Looks a property up by name (exact, case-sensitive).
            pub fn from_name(name: &str) -> Option<Property> {
                match name { $( $name => Some(Property::$variant), )* _ => None }
            }
        }
    };
}

properties! {
    BackupPath = "BackupPath": String(interface::PATH), "The folder a backup writes its archive to.";
    RestorePath = "RestorePath": String(interface::PATH), "The folder a restore reads the archive from.";
    ProgressInterval = "ProgressInterval": U32(interface::U32_NONZERO),
        "Emit a PROGRESS event every this many licenses (default 100, at least 1).";
}

/// The value of property `name` that a host language gives as a number (a double, or an
/// integer of any size converted to one): an unsigned 32-bit value within the property's
/// limits. Checked in the order the core checks a value: `UNKNOWN_PROPERTY` for an unknown
/// name, `WRONG_PROPERTY_TYPE` for a property that does not take numbers, `INVALID_ARGUMENT`
/// for a fraction, a value out of range, NaN or an infinity.
pub fn number_value(name: &str, number: f64) -> Result<PropertyValue> {
    let prop = lookup(name)?;
    if prop.value_type() != ValueType::U32 {
        return Err(Error::new(
            ErrorCode::WrongPropertyType,
            format!("property {name} takes a {:?} value, not a number", prop.value_type()),
        ));
    }
    let spec = prop.spec();
    let Type::Int { min, max, .. } = spec else { unreachable!("a u32 property has an integer spec") };
    if number.fract() != 0.0 || !(min as f64..=max as f64).contains(&number) {
        return Err(interface::invalid(name, &spec, number));
    }
    Ok(PropertyValue::U32(number as u32))
}

/// The default of `ProgressInterval`.
pub const DEFAULT_PROGRESS_INTERVAL: u32 = 100;

/// An ordered set of properties: the order of `set` is the order of `get_by_index`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Properties {
    entries: Vec<(Property, Stored)>,
}

/// A property as it is held: a value, or a path that is not UTF-8 (a folder name in another
/// encoding), which only [`Properties::set_path`] stores.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Stored {
    Value(PropertyValue),
    Path(PathBuf),
}

impl Stored {
    /// The value as the property API reports it: a path that is not UTF-8 as its lossy text.
    fn value(&self) -> PropertyValue {
        match self {
            Stored::Value(v) => v.clone(),
            Stored::Path(p) => PropertyValue::String(p.to_string_lossy().into_owned()),
        }
    }
}

fn lookup(name: &str) -> Result<Property> {
    interface::STRING.check_text("name", name)?;
    Property::from_name(name).ok_or_else(|| {
        let known: Vec<&str> = Property::ALL.iter().map(|p| p.name()).collect();
        Error::new(ErrorCode::UnknownProperty, format!("unknown property {name:?} (known: {})", known.join(", ")))
    })
}

impl Properties {
    /// Sets a property, checking its name, type and value.
    pub fn set(&mut self, name: &str, value: PropertyValue) -> Result<()> {
        let prop = lookup(name)?;
        if value.value_type() != prop.value_type() {
            return Err(Error::new(
                ErrorCode::WrongPropertyType,
                format!("property {name} takes a {:?} value, not {:?}", prop.value_type(), value.value_type()),
            ));
        }
        match &value {
            PropertyValue::String(s) => prop.spec().check_text(name, s)?,
            PropertyValue::U32(n) => prop.spec().check_int(name, i128::from(*n))?,
            PropertyValue::Bool(_) => {}
        }
        self.store(prop, Stored::Value(value));
        Ok(())
    }

    /// Sets a path property (`BackupPath`, `RestorePath`) to an operating-system path, which
    /// need not be UTF-8: a folder whose name is in another encoding. Checked as [`set`]
    /// checks a string (not empty, no NUL), on the path's bytes.
    ///
    /// [`set`]: Properties::set
    pub fn set_path(&mut self, name: &str, path: &Path) -> Result<()> {
        if let Some(text) = path.to_str() {
            return self.set(name, PropertyValue::String(text.to_string()));
        }
        let prop = lookup(name)?;
        if !prop.is_path() {
            return Err(Error::new(
                ErrorCode::WrongPropertyType,
                format!("property {name} takes a {:?} value, not a path", prop.value_type()),
            ));
        }
        interface::check_path(name, path)?;
        self.store(prop, Stored::Path(path.to_path_buf()));
        Ok(())
    }

    fn store(&mut self, prop: Property, value: Stored) {
        match self.entries.iter_mut().find(|(p, _)| *p == prop) {
            Some(entry) => entry.1 = value,
            None => self.entries.push((prop, value)),
        }
    }

    /// The value of a property by name; `None` if it is a known property that is not set. A
    /// path that is not UTF-8 reads as its lossy text: [`get_path`] reads it as it is.
    ///
    /// [`get_path`]: Properties::get_path
    pub fn get(&self, name: &str) -> Result<Option<PropertyValue>> {
        let prop = lookup(name)?;
        Ok(self.value(prop))
    }

    /// The value of a path property by name as the path it names (`None`: not set);
    /// `WRONG_PROPERTY_TYPE` for a property that is not a path.
    pub fn get_path(&self, name: &str) -> Result<Option<PathBuf>> {
        let prop = lookup(name)?;
        if !prop.is_path() {
            return Err(Error::new(ErrorCode::WrongPropertyType, format!("property {name} is not a path")));
        }
        Ok(self.path(prop))
    }

    /// The `index`-th property set, with its name.
    pub fn get_by_index(&self, index: usize) -> Result<(String, PropertyValue)> {
        self.entries.get(index).map(|(p, v)| (p.name().to_string(), v.value())).ok_or_else(|| {
            Error::invalid(format!("property index {index} out of range (count {})", self.entries.len()))
        })
    }

    /// How many properties are set.
    pub fn count(&self) -> usize {
        self.entries.len()
    }

    /// Removes a property by name; returns whether it was set.
    pub fn remove(&mut self, name: &str) -> Result<bool> {
        let prop = lookup(name)?;
        let before = self.entries.len();
        self.entries.retain(|(p, _)| *p != prop);
        Ok(self.entries.len() != before)
    }

    /// Removes every property.
    pub fn remove_all(&mut self) {
        self.entries.clear();
    }

    /// The value of a known property (a path that is not UTF-8 as its lossy text).
    pub fn value(&self, prop: Property) -> Option<PropertyValue> {
        self.entries.iter().find(|(p, _)| *p == prop).map(|(_, v)| v.value())
    }

    /// The path a known path property names.
    pub(crate) fn path(&self, prop: Property) -> Option<PathBuf> {
        self.entries.iter().find(|(p, _)| *p == prop).and_then(|(_, v)| match v {
            Stored::Value(PropertyValue::String(s)) => Some(PathBuf::from(s)),
            Stored::Path(p) => Some(p.clone()),
            Stored::Value(_) => None,
        })
    }

    pub(crate) fn progress_interval(&self) -> u64 {
        match self.value(Property::ProgressInterval) {
            Some(PropertyValue::U32(n)) => u64::from(n),
            _ => u64::from(DEFAULT_PROGRESS_INTERVAL),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_get_index_remove() {
        let mut p = Properties::default();
        p.set("RestorePath", PropertyValue::String("/r".into())).unwrap();
        p.set("BackupPath", PropertyValue::String("/b".into())).unwrap();
        p.set("RestorePath", PropertyValue::String("/r2".into())).unwrap();
        assert_eq!(p.count(), 2);
        assert_eq!(p.get_by_index(0).unwrap(), ("RestorePath".into(), PropertyValue::String("/r2".into())));
        assert_eq!(p.get("BackupPath").unwrap(), Some(PropertyValue::String("/b".into())));
        assert_eq!(p.get_by_index(2).unwrap_err().code(), ErrorCode::InvalidArgument);
        assert!(p.remove("BackupPath").unwrap());
        assert!(!p.remove("BackupPath").unwrap());
        assert_eq!(p.get("BackupPath").unwrap(), None);
        p.remove_all();
        assert_eq!(p.count(), 0);
    }

    #[test]
    fn rejects_unknown_names_and_wrong_types() {
        let mut p = Properties::default();
        assert_eq!(p.set("Nope", PropertyValue::Bool(true)).unwrap_err().code(), ErrorCode::UnknownProperty);
        assert_eq!(p.get("backuppath").unwrap_err().code(), ErrorCode::UnknownProperty);
        assert_eq!(p.set("BackupPath", PropertyValue::U32(1)).unwrap_err().code(), ErrorCode::WrongPropertyType);
        assert_eq!(
            p.set("BackupPath", PropertyValue::String(String::new())).unwrap_err().code(),
            ErrorCode::InvalidArgument
        );
        assert_eq!(p.set("ProgressInterval", PropertyValue::U32(0)).unwrap_err().code(), ErrorCode::InvalidArgument);
        assert_eq!(p.count(), 0);
        assert!(Property::BackupPath.description().contains("folder"));
    }

    #[cfg(unix)]
    #[test]
    fn a_path_that_is_not_utf8_is_kept_as_it_is() {
        use std::os::unix::ffi::OsStrExt;
        let mut p = Properties::default();
        let latin1 = Path::new(std::ffi::OsStr::from_bytes(b"/media/caf\xe9"));
        p.set_path("BackupPath", latin1).unwrap();
        assert_eq!(p.get_path("BackupPath").unwrap().as_deref(), Some(latin1));
        assert_eq!(p.path(Property::BackupPath).as_deref(), Some(latin1));
        assert_eq!(p.get("BackupPath").unwrap(), Some(PropertyValue::String("/media/caf\u{fffd}".into())));
        // A UTF-8 path is a plain string value.
        p.set_path("RestorePath", Path::new("/r")).unwrap();
        assert_eq!(p.get("RestorePath").unwrap(), Some(PropertyValue::String("/r".into())));
        let nul = Path::new(std::ffi::OsStr::from_bytes(b"/a\xe9\0b"));
        assert_eq!(p.set_path("RestorePath", nul).unwrap_err().code(), ErrorCode::InvalidArgument);
        assert_eq!(p.set_path("ProgressInterval", latin1).unwrap_err().code(), ErrorCode::WrongPropertyType);
        assert_eq!(p.get_path("ProgressInterval").unwrap_err().code(), ErrorCode::WrongPropertyType);
        assert_eq!(p.set_path("Nope", latin1).unwrap_err().code(), ErrorCode::UnknownProperty);
        assert_eq!(p.get_path("RestorePath").unwrap().as_deref(), Some(Path::new("/r")));
    }
}
