//! A point on the globe: a home's or a base office's position, as the patient record holds it
//! (`location`) and the planner measures travel with. Kept apart from the planner because the
//! record validates it too, and documents must not depend on planning.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Where a home (or a base office) is: WGS84 degrees.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Position {
    /// Latitude, −90 to 90.
    pub lat: f64,
    /// Longitude, −180 to 180.
    pub lon: f64,
}

/// A position that is not one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid position {value:?}: expected LAT,LON in decimal degrees, e.g. 59.27012,10.41234 (latitude −90 to 90, longitude −180 to 180)"
)]
pub struct InvalidPosition {
    /// The rejected input (shortened).
    pub value: String,
}

impl Position {
    /// A position from degrees, refused outside the globe (or not a number).
    pub fn new(lat: f64, lon: f64) -> Result<Position, InvalidPosition> {
        if (-90.0..=90.0).contains(&lat) && (-180.0..=180.0).contains(&lon) {
            Ok(Position { lat, lon })
        } else {
            Err(InvalidPosition {
                value: format!("{lat},{lon}"),
            })
        }
    }

    /// Parses `LAT,LON` (as the record's `location` field holds it).
    pub fn parse(value: &str) -> Result<Position, InvalidPosition> {
        let err = || InvalidPosition {
            value: value.chars().take(64).collect(),
        };
        let (lat, lon) = value.split_once(',').ok_or_else(err)?;
        let number = |s: &str| s.trim().parse::<f64>().map_err(|_| err());
        Position::new(number(lat)?, number(lon)?).map_err(|_| err())
    }

    /// Straight-line (great-circle) distance in kilometres.
    pub fn km_to(&self, other: &Position) -> f64 {
        const EARTH_KM: f64 = 6371.0;
        let (a, b) = (self.lat.to_radians(), other.lat.to_radians());
        let dlat = b - a;
        let dlon = (other.lon - self.lon).to_radians();
        let h = (dlat / 2.0).sin().powi(2) + a.cos() * b.cos() * (dlon / 2.0).sin().powi(2);
        2.0 * EARTH_KM * h.sqrt().min(1.0).asin()
    }
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:.5},{:.5}", self.lat, self.lon)
    }
}
