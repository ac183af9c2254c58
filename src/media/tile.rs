//! A participant's tile on the canvas: up to two compositor layers at the same rectangle.
//!
//! - the **camera**: decoded video, framed in the tile as `room::framing` says (cameras cropped
//!   to fill it, screens and hall cameras whole), the name on a plate at the picture's
//!   bottom left, sized to the picture;
//! - the **backdrop**: a plain background with the name in the middle, generated here, shown
//!   while the camera is off or when there is none. It exists only while needed.
//!
//! The camera layer joins the compositor only when its first frame is decoded: a compositor
//! input without data makes the whole canvas wait for it once, which every viewer would see as
//! a hiccup. The backdrop produces frames at once.

use std::sync::{Arc, Mutex};

use gst::prelude::*;

use super::ingest::VIDEO_HEAD;
use super::peer::make;
use super::pipeline::{gst_err, RoomPipeline};
use super::{MediaError, TileLabel};
use crate::room::framing::{self, Fit};
use crate::room::layout::{Rect, Size};

/// Label colours (ARGB): white, and amber for the active speaker.
const LABEL_COLOUR: u32 = 0xffff_ffff;
const SPEAKER_COLOUR: u32 = 0xffff_c107;
/// The backdrop's colour (ARGB) and frame rate (it never changes, so a few frames suffice).
const BACKDROP_COLOUR: u32 = 0xff37_474f;
const BACKDROP_FPS: i32 = 5;

struct Camera {
    ghost: gst::GhostPad,
    /// Crops to the tile's shape (cameras that fill their tile).
    crop: Option<gst::Element>,
    scaler_caps: gst::Element,
    framing: Arc<Mutex<Framing>>,
    overlay: gst::Element,
    hold: Option<gst::PadProbeId>,
    mixer_pad: Option<gst::Pad>,
}

struct Backdrop {
    elements: Vec<gst::Element>,
    caps: gst::Element,
    overlay: gst::Element,
    ghost: gst::GhostPad,
    mixer_pad: gst::Pad,
}

pub struct Tile {
    bin: gst::Bin,
    gate: super::ingest::VideoGate,
    camera: Option<Camera>,
    backdrop: Option<Backdrop>,
    rect: Option<Rect>,
    label: TileLabel,
}

/// What the camera layer's name plate depends on; the source's size is learnt on a streaming
/// thread.
#[derive(Debug)]
struct Framing {
    fit: Fit,
    tile: Option<Size>,
    source: Option<Size>,
    /// The crop was taken away while another size was negotiated.
    uncropped: bool,
}

fn lock(framing: &Mutex<Framing>) -> std::sync::MutexGuard<'_, Framing> {
    framing.lock().unwrap_or_else(|e| e.into_inner())
}

/// Crops the source to the tile's shape (when it fills its tile) and puts the name on the
/// picture's bottom left, sized to the picture.
fn apply_framing(crop: Option<&gst::Element>, overlay: &gst::Element, framing: &Framing) {
    let Some(tile) = framing.tile else { return };
    if let (Some(crop), Some(source)) = (crop, framing.source) {
        let keep = framing::centre_crop(source, tile);
        // Even offsets and sizes: the picture is 4:2:0.
        let (x, y) = (keep.x & !1, keep.y & !1);
        let (w, h) = ((keep.width & !1).max(2), (keep.height & !1).max(2));
        set_crop(crop, x, y, source.width.saturating_sub(x + w), source.height.saturating_sub(y + h));
    }
    let plate = framing::name_plate(framing::picture(framing.fit, framing.source, tile), tile.height);
    overlay.set_property("font-desc", format!("Sans Bold {}px", plate.font_px));
    overlay.set_property("xpad", plate.left as i32);
    overlay.set_property("ypad", plate.bottom as i32);
}

fn set_crop(crop: &gst::Element, left: u32, top: u32, right: u32, bottom: u32) {
    for (side, value) in [("left", left), ("top", top), ("right", right), ("bottom", bottom)] {
        if crop.property::<i32>(side) != value as i32 {
            crop.set_property(side, value as i32);
        }
    }
}

fn size_of(rect: Rect) -> Size {
    Size { width: rect.width, height: rect.height }
}

/// The name, after ☝ for a raised hand and ⊘ for a muted microphone (both in DejaVu).
fn label_text(label: &TileLabel) -> String {
    let hand = if label.hand_raised { "\u{261d} " } else { "" };
    let muted = if label.audio_muted { "\u{2298} " } else { "" };
    format!("{hand}{muted}{}", label.name)
}

fn style_overlay(overlay: &gst::Element, label: &TileLabel, centred: bool) {
    overlay.set_property("text", label_text(label));
    overlay.set_property("color", if label.active_speaker { SPEAKER_COLOUR } else { LABEL_COLOUR });
    overlay.set_property_from_str("valignment", if centred { "center" } else { "bottom" });
    overlay.set_property_from_str("halignment", if centred { "center" } else { "left" });
    overlay.set_property_from_str("line-alignment", if centred { "center" } else { "left" });
}

fn new_overlay(name: &str) -> Result<gst::Element, MediaError> {
    let overlay = make("textoverlay", name)?;
    overlay.set_property("shaded-background", true);
    overlay.set_property("draw-outline", true);
    overlay.set_property("wait-text", false);
    // Sized by us to the picture (it would scale with the frame's width otherwise).
    overlay.set_property("auto-resize", false);
    Ok(overlay)
}

fn tile_caps(rect: Option<Rect>, framerate: Option<i32>) -> gst::Caps {
    let mut caps = gst::Caps::builder("video/x-raw").field("pixel-aspect-ratio", gst::Fraction::new(1, 1));
    if let Some(r) = rect {
        caps = caps.field("width", r.width as i32).field("height", r.height as i32);
    }
    if let Some(fps) = framerate {
        caps = caps.field("format", "I420").field("framerate", gst::Fraction::new(fps, 1));
    }
    caps.build()
}

impl Tile {
    /// A tile for a publisher in `bin`. With `camera`, decoded video is expected at the bin's
    /// video head and `on_first_frame` is called (on a streaming thread) when it arrives.
    pub fn new(
        bin: &gst::Bin,
        camera: bool,
        fit: Fit,
        gate: super::ingest::VideoGate,
        label: TileLabel,
        on_first_frame: impl Fn() + Send + Sync + 'static,
    ) -> Result<Self, MediaError> {
        let camera = if camera { Some(Camera::build(bin, fit, on_first_frame)?) } else { None };
        Ok(Self { bin: bin.clone(), gate, camera, backdrop: None, rect: None, label })
    }

    /// What the tile shows as its name and marks.
    pub fn label(&self) -> &TileLabel {
        &self.label
    }

    /// Whether anything of this tile is on the canvas.
    pub fn is_visible(&self) -> bool {
        self.backdrop.is_some() || self.camera.as_ref().is_some_and(|c| c.mixer_pad.is_some())
    }

    fn needs_backdrop(&self) -> bool {
        self.label.video_muted || self.camera.is_none()
    }

    /// Connects the camera layer once its first frame is there.
    pub fn connect_camera(&mut self, pipe: &RoomPipeline) -> Result<(), MediaError> {
        let Some(camera) = self.camera.as_mut().filter(|c| c.mixer_pad.is_none()) else { return Ok(()) };
        let pad = pipe.request_tile()?;
        pad.set_property("zorder", 1u32);
        if let Err(e) = camera.connect(pad.clone()) {
            pipe.release_tile(&pad);
            return Err(e);
        }
        self.apply(pipe)
    }

    /// New label (name, mute marks, speaker); adds or removes the backdrop as needed.
    pub fn set_label(&mut self, label: TileLabel, pipe: &RoomPipeline) -> Result<(), MediaError> {
        self.label = label;
        self.apply(pipe)
    }

    /// Where the tile is now; `None` while hidden.
    pub fn rect(&self) -> Option<Rect> {
        self.rect
    }

    pub fn place(&mut self, rect: Rect) {
        self.rect = Some(rect);
        self.gate.open();
        if let Some(camera) = &self.camera {
            camera.scaler_caps.set_property("caps", tile_caps(Some(rect), None));
            let mut framing = lock(&camera.framing);
            framing.tile = Some(size_of(rect));
            apply_framing(camera.crop.as_ref(), &camera.overlay, &framing);
            drop(framing);
            if let Some(pad) = &camera.mixer_pad {
                RoomPipeline::place_tile(pad, rect);
                pad.set_property("alpha", if self.label.video_muted { 0.0f64 } else { 1.0f64 });
            }
        }
        if let Some(backdrop) = &self.backdrop {
            backdrop.caps.set_property("caps", tile_caps(Some(rect), Some(BACKDROP_FPS)));
            backdrop.overlay.set_property("font-desc", format!("Sans Bold {}px", framing::backdrop_font_px(size_of(rect))));
            RoomPipeline::place_tile(&backdrop.mixer_pad, rect);
        }
    }

    /// Keeps the tile but shows nothing of it (not on stage, or no room in the layout).
    pub fn hide(&mut self) {
        self.rect = None;
        self.gate.close();
        if let Some(pad) = self.camera.as_ref().and_then(|c| c.mixer_pad.as_ref()) {
            pad.set_property("alpha", 0.0f64);
        }
        if let Some(backdrop) = &self.backdrop {
            backdrop.mixer_pad.set_property("alpha", 0.0f64);
        }
    }

    /// Takes both layers off the canvas at once.
    pub fn release(&mut self, pipe: &RoomPipeline) {
        if let Some(pad) = self.camera.as_mut().and_then(|c| c.mixer_pad.take()) {
            pipe.release_tile(&pad);
        }
        if let Some(backdrop) = self.backdrop.take() {
            backdrop.remove(&self.bin, pipe);
        }
    }

    fn apply(&mut self, pipe: &RoomPipeline) -> Result<(), MediaError> {
        if let Some(camera) = &self.camera {
            style_overlay(&camera.overlay, &self.label, false);
        }
        match (self.needs_backdrop(), self.backdrop.is_some()) {
            (true, false) => self.backdrop = Some(Backdrop::build(&self.bin, self.rect, pipe)?),
            (false, true) => {
                if let Some(b) = self.backdrop.take() {
                    b.remove(&self.bin, pipe);
                }
            }
            _ => {}
        }
        if let Some(backdrop) = &self.backdrop {
            style_overlay(&backdrop.overlay, &self.label, true);
        }
        if let Some(rect) = self.rect {
            self.place(rect);
        }
        Ok(())
    }
}

impl Camera {
    fn build(bin: &gst::Bin, fit: Fit, on_first_frame: impl Fn() + Send + Sync + 'static) -> Result<Self, MediaError> {
        let convert = make("videoconvert", VIDEO_HEAD)?;
        let crop = match fit {
            Fit::Fill => Some(make("videocrop", "vcrop")?),
            Fit::Whole => None,
        };
        let scale = make("videoscale", "vscale")?;
        scale.set_property("add-borders", true);
        let scaler_caps = make("capsfilter", "vtile-caps")?;
        let overlay = new_overlay("vlabel")?;
        let chain: Vec<&gst::Element> = [Some(&convert), crop.as_ref(), Some(&scale), Some(&scaler_caps), Some(&overlay)].into_iter().flatten().collect();
        bin.add_many(&chain).map_err(gst_err)?;
        gst::Element::link_many(&chain).map_err(gst_err)?;
        let framing = Arc::new(Mutex::new(Framing { fit, tile: None, source: None, uncropped: false }));
        watch_source_size(crop.as_ref().unwrap_or(&scale), crop.as_ref(), &overlay, framing.clone());
        let target = overlay.static_pad("src").expect("textoverlay has a src pad");
        // Never block here: this is a streaming thread, and the room task may need it. Frames
        // are dropped until the layer is connected (a few milliseconds).
        let notified = std::sync::atomic::AtomicBool::new(false);
        let hold = target.add_probe(gst::PadProbeType::BUFFER, move |_, _| {
            if !notified.swap(true, std::sync::atomic::Ordering::Relaxed) {
                on_first_frame();
            }
            gst::PadProbeReturn::Drop
        });
        let ghost = gst::GhostPad::builder_with_target(&target).map_err(gst_err)?.name("camera").build();
        bin.add_pad(&ghost).map_err(gst_err)?;
        for e in chain {
            e.sync_state_with_parent().map_err(gst_err)?;
        }
        Ok(Self { ghost, crop, scaler_caps, framing, overlay, hold, mixer_pad: None })
    }

    fn connect(&mut self, mixer_pad: gst::Pad) -> Result<(), MediaError> {
        self.ghost.link(&mixer_pad).map_err(gst_err)?;
        self.mixer_pad = Some(mixer_pad);
        if let (Some(id), Some(target)) = (self.hold.take(), self.ghost.target()) {
            target.remove_probe(id);
        }
        Ok(())
    }
}

/// Frames each source size as it comes: the crop (when the source fills its tile) and the
/// name's place. A crop meant for one size may not fit another (one of 140+140 pixels makes a
/// 160-pixel-wide picture impossible), and the crop answers the queries that negotiate a new
/// size: so while a size other than the current one is being negotiated there is no crop (any
/// size fits), and the crop for the size agreed on is set when its caps arrive, or at the next
/// frame when the size stayed as it was.
fn watch_source_size(first: &gst::Element, crop: Option<&gst::Element>, overlay: &gst::Element, framing: Arc<Mutex<Framing>>) {
    let Some(pad) = first.static_pad("sink") else { return };
    let (crop, overlay) = (crop.map(|c| c.downgrade()), overlay.downgrade());
    let kinds = gst::PadProbeType::EVENT_DOWNSTREAM | gst::PadProbeType::QUERY_DOWNSTREAM | gst::PadProbeType::BUFFER;
    pad.add_probe(kinds, move |_, info| {
        let Some(overlay) = overlay.upgrade() else { return gst::PadProbeReturn::Ok };
        let crop = crop.as_ref().and_then(|c| c.upgrade());
        let mut framing = lock(&framing);
        match &info.data {
            Some(gst::PadProbeData::Event(event)) => {
                if let gst::EventView::Caps(c) = event.view() {
                    if let Some(size) = fixed_size(c.caps()) {
                        framing.source = Some(size);
                        framing.uncropped = false;
                        apply_framing(crop.as_ref(), &overlay, &framing);
                    }
                }
            }
            Some(gst::PadProbeData::Query(query)) => {
                let asked = match query.view() {
                    gst::QueryView::AcceptCaps(q) => Some(fixed_size(q.caps())),
                    gst::QueryView::Caps(q) => Some(q.filter().and_then(fixed_size)),
                    _ => None,
                };
                if let (Some(asked), Some(crop)) = (asked, crop.as_ref()) {
                    if asked.is_none() || asked != framing.source {
                        set_crop(crop, 0, 0, 0, 0);
                        framing.uncropped = true;
                    }
                }
            }
            Some(gst::PadProbeData::Buffer(_)) if framing.uncropped => {
                framing.uncropped = false;
                apply_framing(crop.as_ref(), &overlay, &framing);
            }
            _ => {}
        }
        gst::PadProbeReturn::Ok
    });
}

/// The width and height of caps that name exactly one.
fn fixed_size(caps: &gst::CapsRef) -> Option<Size> {
    let s = caps.structure(0)?;
    let (width, height) = (s.get::<i32>("width").ok()?, s.get::<i32>("height").ok()?);
    (width > 0 && height > 0).then(|| Size { width: width as u32, height: height as u32 })
}

impl Backdrop {
    fn build(bin: &gst::Bin, rect: Option<Rect>, pipe: &RoomPipeline) -> Result<Self, MediaError> {
        let source = make("videotestsrc", "backdrop-src")?;
        source.set_property("is-live", true);
        source.set_property_from_str("pattern", "solid-color");
        source.set_property("foreground-color", BACKDROP_COLOUR);
        let caps = make("capsfilter", "backdrop-caps")?;
        caps.set_property("caps", tile_caps(rect, Some(BACKDROP_FPS)));
        let overlay = new_overlay("backdrop-label")?;
        let elements = vec![source, caps.clone(), overlay.clone()];
        bin.add_many(&elements).map_err(gst_err)?;
        gst::Element::link_many(&elements).map_err(gst_err)?;
        let target = overlay.static_pad("src").expect("textoverlay has a src pad");
        let ghost = gst::GhostPad::builder_with_target(&target).map_err(gst_err)?.name("backdrop").build();
        bin.add_pad(&ghost).map_err(gst_err)?;
        let mixer_pad = pipe.request_tile()?;
        mixer_pad.set_property("zorder", 0u32);
        ghost.link(&mixer_pad).map_err(gst_err)?;
        // Downstream first, so the source's first frame finds everything running. The room
        // always plays; the session bin may still be on its way there, and a live source
        // synced to a PAUSED parent would wait.
        for e in elements.iter().rev() {
            e.set_state(gst::State::Playing).map_err(gst_err)?;
        }
        Ok(Self { elements, caps, overlay, ghost, mixer_pad })
    }

    fn remove(self, bin: &gst::Bin, pipe: &RoomPipeline) {
        pipe.release_tile(&self.mixer_pad);
        let _ = bin.remove_pad(&self.ghost);
        for e in &self.elements {
            let _ = e.set_locked_state(true);
        }
        let _ = bin.remove_many(&self.elements);
        let elements = self.elements;
        tokio::task::spawn_blocking(move || {
            for e in &elements {
                let _ = e.set_state(gst::State::Null);
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_mark_raised_hands_and_muted_microphones() {
        let mut label = TileLabel { name: "Ada".into(), ..Default::default() };
        assert_eq!(label_text(&label), "Ada");
        label.audio_muted = true;
        assert_eq!(label_text(&label), "\u{2298} Ada");
        label.hand_raised = true;
        assert_eq!(label_text(&label), "\u{261d} \u{2298} Ada");
    }
}
