//! Validation of each value against its column's reference (SPEC §7): `ok`, `missing`, `null`,
//! `nan` (NaN/±Inf), `wrong_type`, `out_of_range` (outside the reference [min, max]),
//! `unseen_category` (not among the reference's categories, when it knows them all).

use super::reference::{ColumnProfile, Kind, category};
use crate::extract::table::Cell;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Ok,
    Missing,
    Null,
    Nan,
    WrongType,
    OutOfRange,
    UnseenCategory,
}

impl Status {
    pub const ALL: [Self; 7] = [
        Self::Ok,
        Self::Missing,
        Self::Null,
        Self::Nan,
        Self::WrongType,
        Self::OutOfRange,
        Self::UnseenCategory,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Missing => "missing",
            Self::Null => "null",
            Self::Nan => "nan",
            Self::WrongType => "wrong_type",
            Self::OutOfRange => "out_of_range",
            Self::UnseenCategory => "unseen_category",
        }
    }

    pub fn index(self) -> usize {
        self as usize
    }
}

/// The status of `cell` in a column of `kind`, judged against `reference` when there is one.
pub fn validate(cell: &Cell, kind: Kind, reference: Option<&ColumnProfile>) -> Status {
    match cell {
        Cell::Missing => return Status::Missing,
        Cell::Null => return Status::Null,
        Cell::Number(x) if !x.is_finite() => return Status::Nan,
        Cell::Invalid => return Status::WrongType,
        _ => {}
    }
    match kind {
        Kind::Numeric => {
            let Cell::Number(x) = cell else {
                return Status::WrongType;
            };
            match reference.and_then(|r| r.numeric.as_ref()) {
                Some(numeric)
                    if numeric.min.is_finite() && (*x < numeric.min || *x > numeric.max) =>
                {
                    Status::OutOfRange
                }
                _ => Status::Ok,
            }
        }
        Kind::Categorical => {
            let Some(label) = category(cell) else {
                return Status::WrongType;
            };
            match reference.and_then(|r| r.categorical.as_ref()) {
                Some(categorical)
                    if categorical.complete
                        && categorical.categories.binary_search(&label).is_err() =>
                {
                    Status::UnseenCategory
                }
                _ => Status::Ok,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::extract::table::Role;
    use crate::monitor::reference::{ColumnInput, ProfileBuilder};

    #[test]
    fn statuses_follow_spec_7() {
        let mut builder = ProfileBuilder::new(vec![
            ColumnInput {
                name: "x".into(),
                role: Role::Input,
                kind: Kind::Numeric,
            },
            ColumnInput {
                name: "c".into(),
                role: Role::Input,
                kind: Kind::Categorical,
            },
        ]);
        builder.push(&[Cell::Number(1.0), Cell::Text("a".into())]);
        builder.push(&[Cell::Number(3.0), Cell::Text("b".into())]);
        let profile = builder.finish(None, "t".into(), 10, 10);
        let (x, c) = (Some(&profile.columns[0]), Some(&profile.columns[1]));
        let cases = [
            (Cell::Number(2.0), Kind::Numeric, x, Status::Ok),
            (Cell::Number(3.5), Kind::Numeric, x, Status::OutOfRange),
            (Cell::Number(f64::NAN), Kind::Numeric, x, Status::Nan),
            (Cell::Number(f64::INFINITY), Kind::Numeric, x, Status::Nan),
            (Cell::Null, Kind::Numeric, x, Status::Null),
            (Cell::Missing, Kind::Numeric, x, Status::Missing),
            (Cell::Text("2".into()), Kind::Numeric, x, Status::WrongType),
            (Cell::Invalid, Kind::Categorical, c, Status::WrongType),
            (Cell::Text("a".into()), Kind::Categorical, c, Status::Ok),
            (
                Cell::Text("z".into()),
                Kind::Categorical,
                c,
                Status::UnseenCategory,
            ),
            (Cell::Number(9.0), Kind::Numeric, None, Status::Ok),
        ];
        for (cell, kind, reference, expected) in cases {
            assert_eq!(validate(&cell, kind, reference), expected, "{cell:?}");
        }
    }
}
