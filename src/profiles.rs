//! Encoder profiles from `pipelines/*.toml`: gst-launch fragments, checked at start-up.
//!
//! The files in the repository's `pipelines/` are compiled into the binary, so a bare `plenum`
//! runs anywhere; `--pipelines-dir` loads a directory instead. Every profile is parsed into a
//! real GStreamer bin at start-up: a typo, a missing element or an unknown property stops the
//! server with a message naming the file and what GStreamer said about the element.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// The profiles shipped with Plenum, by file name.
const BUILTIN: &[(&str, &str)] = &[
    ("vp8.toml", include_str!("../pipelines/vp8.toml")),
    ("h264-x264.toml", include_str!("../pipelines/h264-x264.toml")),
    ("h264-vaapi.toml", include_str!("../pipelines/h264-vaapi.toml")),
];

/// Video codecs the engine can send to viewers and receive from publishers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum VideoCodec {
    Vp8,
    H264,
}

impl VideoCodec {
    pub fn name(self) -> &'static str {
        match self {
            VideoCodec::Vp8 => "vp8",
            VideoCodec::H264 => "h264",
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ProfileFile {
    codec: VideoCodec,
    description: Option<String>,
    encoder: String,
    #[serde(default)]
    requires: Vec<String>,
    /// The encoding ladder, top first; none: one rung, the canvas as the fragment encodes it.
    #[serde(default, rename = "rung")]
    rungs: Vec<Rung>,
}

/// One step of the encoding ladder: the composite scaled to `height` (the width follows the
/// canvas), at most `fps` frames a second, encoded at `kbps`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rung {
    pub name: String,
    pub height: u32,
    pub fps: u32,
    pub kbps: u32,
}

/// The placeholders a ladder's encoder fragment carries for each rung's bitrate.
const KBPS: &str = "{kbps}";
const BPS: &str = "{bps}";

/// One usable encoder profile.
#[derive(Clone, Debug)]
pub struct EncoderProfile {
    /// File stem, e.g. `vp8`, `h264-x264`.
    pub name: String,
    pub codec: VideoCodec,
    pub description: String,
    /// The gst-launch fragment, whitespace folded to single spaces; with a ladder it holds
    /// `{kbps}` or `{bps}` for the rung's bitrate.
    pub encoder: String,
    /// Top first; empty when the profile has no ladder (one rung: the canvas).
    pub rungs: Vec<Rung>,
}

impl EncoderProfile {
    /// The encoder fragment for a rung of `kbps` (the fragment as written without a ladder).
    pub fn encoder_for(&self, kbps: Option<u32>) -> String {
        match kbps {
            Some(k) => self.encoder.replace(KBPS, &k.to_string()).replace(BPS, &(u64::from(k) * 1000).to_string()),
            None => self.encoder.clone(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    #[error("{file}: cannot read: {source}")]
    Read { file: String, source: std::io::Error },
    #[error("{file}: not a valid profile: {message}")]
    Syntax { file: String, message: String },
    #[error("{file}: encoder pipeline is broken: {message}")]
    Pipeline { file: String, message: String },
    #[error("{dir}: no *.toml profiles found")]
    Empty { dir: String },
    #[error("profile '{name}' selected for {codec} does not exist or is unavailable here (available: {available})")]
    Missing { name: String, codec: &'static str, available: String },
    #[error("profile '{name}' is a {actual} profile, but was selected for {wanted}")]
    WrongCodec { name: String, actual: &'static str, wanted: &'static str },
}

/// All profiles that can run on this machine, by name.
#[derive(Clone, Debug, Default)]
pub struct Profiles {
    by_name: BTreeMap<String, EncoderProfile>,
}

impl Profiles {
    /// Loads and validates the built-in profiles, or those of `dir`. Needs `gst::init()` first.
    pub fn load(dir: Option<&Path>) -> Result<Self, ProfileError> {
        let sources: Vec<(String, String)> = match dir {
            None => BUILTIN
                .iter()
                .map(|(file, text)| (format!("pipelines/{file}"), text.to_string()))
                .collect(),
            Some(dir) => read_dir(dir)?,
        };
        let mut by_name = BTreeMap::new();
        for (file, text) in sources {
            if let Some(profile) = parse_and_check(&file, &text)? {
                by_name.insert(profile.name.clone(), profile);
            }
        }
        Ok(Self { by_name })
    }

    /// The profile named `name`, which must encode `codec`.
    pub fn select(&self, name: &str, codec: VideoCodec) -> Result<EncoderProfile, ProfileError> {
        let profile = self.by_name.get(name).ok_or_else(|| ProfileError::Missing {
            name: name.to_string(),
            codec: codec.name(),
            available: self.by_name.keys().cloned().collect::<Vec<_>>().join(", "),
        })?;
        if profile.codec != codec {
            return Err(ProfileError::WrongCodec {
                name: name.to_string(),
                actual: profile.codec.name(),
                wanted: codec.name(),
            });
        }
        Ok(profile.clone())
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.by_name.keys().map(String::as_str)
    }
}

fn read_dir(dir: &Path) -> Result<Vec<(String, String)>, ProfileError> {
    let read_err = |source| ProfileError::Read { file: dir.display().to_string(), source };
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(read_err)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    paths.sort();
    if paths.is_empty() {
        return Err(ProfileError::Empty { dir: dir.display().to_string() });
    }
    paths
        .into_iter()
        .map(|p| {
            let file = p.display().to_string();
            std::fs::read_to_string(&p)
                .map(|text| (file.clone(), text))
                .map_err(|source| ProfileError::Read { file, source })
        })
        .collect()
}

/// Parses one profile and builds its encoder once. `Ok(None)`: it needs an element this machine
/// lacks (declared in `requires`), so it is skipped with a warning.
fn parse_and_check(file: &str, text: &str) -> Result<Option<EncoderProfile>, ProfileError> {
    let parsed: ProfileFile = toml::from_str(text)
        .map_err(|e| ProfileError::Syntax { file: file.to_string(), message: e.to_string().trim().to_string() })?;
    let name = Path::new(file)
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| file.to_string());
    if let Some(missing) = parsed.requires.iter().find(|e| gst::ElementFactory::find(e).is_none()) {
        tracing::warn!(profile = %name, element = %missing, "encoder profile skipped: element not installed");
        return Ok(None);
    }
    let encoder = parsed.encoder.split_whitespace().collect::<Vec<_>>().join(" ");
    let syntax = |message: String| ProfileError::Syntax { file: file.to_string(), message };
    let templated = encoder.contains(KBPS) || encoder.contains(BPS);
    if templated && parsed.rungs.is_empty() {
        return Err(syntax(format!("the encoder uses {KBPS} or {BPS} but no [[rung]] gives a bitrate")));
    }
    if !templated && !parsed.rungs.is_empty() {
        return Err(syntax(format!("[[rung]] needs the encoder to take its bitrate as {KBPS} or {BPS}")));
    }
    for pair in parsed.rungs.windows(2) {
        if pair[1].height >= pair[0].height || pair[1].kbps >= pair[0].kbps {
            return Err(syntax(format!("rung '{}' must be smaller and cheaper than '{}' above it", pair[1].name, pair[0].name)));
        }
    }
    if let Some(r) = parsed.rungs.iter().find(|r| r.height < 2 || r.fps == 0 || r.kbps == 0) {
        return Err(syntax(format!("rung '{}' needs a height of 2 or more, fps and kbps above 0", r.name)));
    }
    let profile = EncoderProfile {
        name,
        codec: parsed.codec,
        description: parsed.description.unwrap_or_default(),
        encoder,
        rungs: parsed.rungs,
    };
    let bitrates: Vec<Option<u32>> = if templated { profile.rungs.iter().map(|r| Some(r.kbps)).collect() } else { vec![None] };
    for kbps in bitrates {
        gst::parse::bin_from_description(&profile.encoder_for(kbps), true)
            .map_err(|e| ProfileError::Pipeline { file: file.to_string(), message: e.to_string() })?;
    }
    Ok(Some(profile))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn init() {
        gst::init().expect("GStreamer initialises");
    }

    #[test]
    fn builtin_profiles_load_and_select() {
        init();
        let profiles = Profiles::load(None).expect("built-in profiles are valid");
        assert_eq!(profiles.select("vp8", VideoCodec::Vp8).unwrap().codec, VideoCodec::Vp8);
        assert!(profiles.select("h264-x264", VideoCodec::H264).is_ok());
        assert!(matches!(
            profiles.select("vp8", VideoCodec::H264),
            Err(ProfileError::WrongCodec { .. })
        ));
        assert!(matches!(profiles.select("nope", VideoCodec::Vp8), Err(ProfileError::Missing { .. })));
    }

    #[test]
    fn a_missing_element_is_named_with_the_file() {
        init();
        let err = parse_and_check("pipelines/bad.toml", "codec = \"vp8\"\nencoder = \"videoconvert ! vp8encx\"")
            .unwrap_err()
            .to_string();
        assert!(err.contains("pipelines/bad.toml") && err.contains("vp8encx"), "{err}");
    }

    #[test]
    fn an_unknown_property_is_named_with_the_element() {
        init();
        let err = parse_and_check("p/x.toml", "codec = \"vp8\"\nencoder = \"vp8enc no-such-prop=1\"")
            .unwrap_err()
            .to_string();
        assert!(err.contains("p/x.toml") && err.contains("no-such-prop"), "{err}");
    }

    #[test]
    fn required_but_absent_elements_skip_the_profile() {
        init();
        let text = "codec = \"h264\"\nrequires = [\"surely-not-an-element\"]\nencoder = \"x\"";
        assert!(parse_and_check("p/hw.toml", text).unwrap().is_none());
    }

    #[test]
    fn ladders_are_checked_rung_by_rung() {
        init();
        let profiles = Profiles::load(None).unwrap();
        for (name, codec) in [("vp8", VideoCodec::Vp8), ("h264-x264", VideoCodec::H264)] {
            let p = profiles.select(name, codec).unwrap();
            assert!(p.rungs.len() >= 3, "{name} has a ladder");
            assert!(p.encoder_for(Some(150)).contains("150"), "{name}: the bitrate goes in");
        }
        let rung = |n: &str, h: u32, k: u32| format!("[[rung]]\nname = \"{n}\"\nheight = {h}\nfps = 30\nkbps = {k}\n");
        let ladder = format!("codec = \"vp8\"\nencoder = \"vp8enc target-bitrate={{bps}}\"\n{}{}", rung("hi", 720, 1500), rung("lo", 360, 500));
        let p = parse_and_check("p/l.toml", &ladder).unwrap().unwrap();
        assert_eq!(p.encoder_for(Some(500)), "vp8enc target-bitrate=500000");
        let upside_down = format!("codec = \"vp8\"\nencoder = \"vp8enc target-bitrate={{bps}}\"\n{}{}", rung("lo", 360, 500), rung("hi", 720, 1500));
        assert!(parse_and_check("p/u.toml", &upside_down).unwrap_err().to_string().contains("'hi'"));
        let fixed = format!("codec = \"vp8\"\nencoder = \"vp8enc\"\n{}", rung("hi", 720, 1500));
        assert!(parse_and_check("p/f.toml", &fixed).unwrap_err().to_string().contains("{kbps}"));
        let bad_value = format!("codec = \"vp8\"\nencoder = \"vp8enc target-bitrate={{bps}} cpu-used=x\"\n{}", rung("hi", 720, 1500));
        assert!(matches!(parse_and_check("p/b.toml", &bad_value), Err(ProfileError::Pipeline { .. })));
    }

    #[test]
    fn toml_mistakes_are_reported() {
        init();
        let err = parse_and_check("p/y.toml", "codec = \"av1\"\nencoder = \"x\"").unwrap_err();
        assert!(matches!(err, ProfileError::Syntax { .. }), "{err}");
    }
}
