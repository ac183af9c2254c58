//! The room's media as the operator's metrics show it: written once a second from what the
//! task holds (so the figures cannot drift), taken away when the room closes.

use std::collections::BTreeMap;

use super::{Kind, RoomTask};
use crate::metrics::{metrics, EncoderFigures};

impl RoomTask {
    pub(super) fn report_metrics(&self) {
        let mut publishers = 0;
        let mut viewers: BTreeMap<(String, String), i64> = BTreeMap::new();
        for session in self.sessions.values() {
            match &session.kind {
                Kind::Publisher { .. } => publishers += 1,
                Kind::Viewer { video, .. } => {
                    let (codec, rung) = match video {
                        Some(v) => {
                            let rungs = self.pipe.rungs(v.codec);
                            let rung = v.rung.and_then(|i| rungs.get(i)).map_or_else(|| "audio".to_string(), |r| r.name.clone());
                            (v.codec.name().to_string(), rung)
                        }
                        None => ("none".to_string(), "audio".to_string()),
                    };
                    *viewers.entry((codec, rung)).or_default() += 1;
                }
            }
        }
        let viewers: Vec<(String, String, i64)> = viewers.into_iter().map(|((c, r), n)| (c, r, n)).collect();
        let outputs = [
            ("recording", i64::from(self.recording.is_some())),
            ("hls", i64::from(self.hls.is_some())),
            ("stream", self.streams.len() as i64),
            ("camera", self.cameras.len() as i64),
        ];
        metrics().set_room(self.room.as_str(), publishers, &viewers, &outputs);
        metrics().set_mixer_underruns(self.room.as_str(), self.pipe.mixer.underruns());
        let encoders: Vec<EncoderFigures> = self
            .pipe
            .encoder_stats()
            .into_iter()
            .map(|e| EncoderFigures { codec: e.codec.name().to_string(), rung: e.rung, waiting: e.waiting, encoded: e.encoded, dropped: e.dropped })
            .collect();
        metrics().set_encoders(self.room.as_str(), &encoders);
    }
}
