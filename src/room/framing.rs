//! How a source fills its tile, and where its name goes: pure geometry, applied by the media
//! engine's tiles.
//!
//! Cameras **fill** their tile: cropped to the tile's shape around the centre (where faces
//! are), as tile views do, so no part of the tile is black. Shared screens and hall cameras'
//! wide shots are shown **whole**, with bars where the shapes differ: a slide must not lose
//! its edges. The name sits on a plate in the bottom-left corner of the *picture* (not of the
//! bars), its size following the picture's.

use super::layout::{Rect, Size};

/// How a source is framed in its tile.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fit {
    /// Cropped to the tile's shape around its centre.
    Fill,
    /// Shown whole, with bars.
    Whole,
}

/// The part of a `source`-sized picture that fills a tile of `tile`'s shape: the whole width
/// or the whole height, centred.
pub fn centre_crop(source: Size, tile: Size) -> Rect {
    if source.width == 0 || source.height == 0 || tile.width == 0 || tile.height == 0 {
        return Rect { x: 0, y: 0, width: source.width, height: source.height };
    }
    let (sw, sh, tw, th) = (u64::from(source.width), u64::from(source.height), u64::from(tile.width), u64::from(tile.height));
    if sw * th > tw * sh {
        // Wider than the tile: keep the height, cut the sides.
        let width = (sh * tw / th) as u32;
        Rect { x: (source.width - width) / 2, y: 0, width, height: source.height }
    } else {
        let height = (sw * th / tw) as u32;
        Rect { x: 0, y: (source.height - height) / 2, width: source.width, height }
    }
}

/// Where a `source`-sized picture lies in a `tile`-sized frame when shown whole (tile
/// coordinates).
pub fn whole(source: Size, tile: Size) -> Rect {
    if source.width == 0 || source.height == 0 {
        return Rect { x: 0, y: 0, width: tile.width, height: tile.height };
    }
    let (sw, sh, tw, th) = (u64::from(source.width), u64::from(source.height), u64::from(tile.width), u64::from(tile.height));
    if sw * th > tw * sh {
        let height = (sh * tw / sw) as u32;
        Rect { x: 0, y: (tile.height - height) / 2, width: tile.width, height }
    } else {
        let width = (sw * th / sh) as u32;
        Rect { x: (tile.width - width) / 2, y: 0, width, height: tile.height }
    }
}

/// Where the picture lies in its tile (tile coordinates): all of it when filled; when shown
/// whole, as far as the source's size is known (the whole tile until then).
pub fn picture(fit: Fit, source: Option<Size>, tile: Size) -> Rect {
    match (fit, source) {
        (Fit::Whole, Some(source)) => whole(source, tile),
        _ => Rect { x: 0, y: 0, width: tile.width, height: tile.height },
    }
}

/// A name plate: the font's size in pixels, and the distance of the text from the picture's
/// left and bottom edges within a frame (what the text overlay calls its padding).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NamePlate {
    pub font_px: u32,
    pub left: u32,
    pub bottom: u32,
}

/// The text's size: a tenth of the picture's height (readable on a phone showing the whole
/// canvas), within these bounds.
const FONT_MIN_PX: u32 = 12;
const FONT_MAX_PX: u32 = 32;

/// The plate of a picture at `picture` in a frame `frame_height` high.
pub fn name_plate(picture: Rect, frame_height: u32) -> NamePlate {
    let font_px = (picture.height / 10).clamp(FONT_MIN_PX, FONT_MAX_PX);
    // The overlay's shaded plate reaches a few pixels beyond the text: keep it inside.
    let margin = (font_px / 2).max(8);
    let picture_bottom = picture.y + picture.height;
    NamePlate { font_px, left: picture.x + margin, bottom: frame_height.saturating_sub(picture_bottom) + margin }
}

/// The size of the name on a tile without a picture (centred on a plain background).
pub fn backdrop_font_px(tile: Size) -> u32 {
    (tile.height / 7).clamp(FONT_MIN_PX + 4, FONT_MAX_PX + 16)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HD: Size = Size { width: 1280, height: 720 };

    fn size(width: u32, height: u32) -> Size {
        Size { width, height }
    }

    #[test]
    fn a_wide_camera_in_a_square_tile_loses_its_sides_not_its_centre() {
        let crop = centre_crop(HD, size(640, 640));
        assert_eq!(crop, Rect { x: 280, y: 0, width: 720, height: 720 });
        assert_eq!(crop.x * 2 + crop.width, HD.width, "centred");
    }

    #[test]
    fn a_portrait_phone_in_a_wide_tile_loses_top_and_bottom() {
        let crop = centre_crop(size(360, 640), size(640, 360));
        assert_eq!(crop.width, 360);
        assert_eq!(crop.height, 202);
        assert_eq!(crop.y, 219);
    }

    #[test]
    fn the_same_shape_is_not_cropped() {
        assert_eq!(centre_crop(HD, size(640, 360)), Rect { x: 0, y: 0, width: 1280, height: 720 });
        assert_eq!(centre_crop(size(0, 0), size(640, 360)), Rect { x: 0, y: 0, width: 0, height: 0 });
    }

    #[test]
    fn a_crop_keeps_the_tiles_aspect() {
        for source in [HD, size(640, 480), size(480, 640), size(1920, 1080), size(352, 288)] {
            for tile in [size(640, 640), size(426, 360), size(1280, 562), size(224, 158)] {
                let c = centre_crop(source, tile);
                let (a, b) = (f64::from(c.width) / f64::from(c.height), f64::from(tile.width) / f64::from(tile.height));
                assert!((a - b).abs() / b < 0.01, "{source:?} in {tile:?}: {c:?}");
                assert!(c.x + c.width <= source.width && c.y + c.height <= source.height);
            }
        }
    }

    #[test]
    fn a_screen_shown_whole_keeps_its_shape_with_bars() {
        // A 4:3 slide on the 1280x562 stage: bars left and right.
        let p = whole(size(1024, 768), size(1280, 562));
        assert_eq!(p, Rect { x: 265, y: 0, width: 749, height: 562 });
        // A 16:9 screen in a square tile: bars above and below.
        let p = whole(HD, size(640, 640));
        assert_eq!(p, Rect { x: 0, y: 140, width: 640, height: 360 });
    }

    #[test]
    fn the_name_plate_lies_inside_the_picture() {
        let tile = size(1280, 562);
        for (fit, source) in [(Fit::Fill, Some(HD)), (Fit::Whole, Some(size(1024, 768))), (Fit::Whole, Some(HD)), (Fit::Whole, None)] {
            let p = picture(fit, source, tile);
            let plate = name_plate(p, tile.height);
            assert!(plate.left >= p.x + 6, "{fit:?} {source:?}: {plate:?} left of {p:?}");
            assert!(tile.height - plate.bottom <= p.y + p.height - 6, "{fit:?} {source:?}: {plate:?} below {p:?}");
            assert!(tile.height - plate.bottom - plate.font_px >= p.y, "{fit:?} {source:?}: {plate:?} above {p:?}");
        }
    }

    #[test]
    fn the_name_grows_with_the_picture_within_bounds() {
        let at = |h| name_plate(Rect { x: 0, y: 0, width: h * 16 / 9, height: h }, h).font_px;
        assert_eq!(at(90), FONT_MIN_PX);
        assert_eq!(at(240), 24);
        assert_eq!(at(720), FONT_MAX_PX);
        assert!(at(158) >= FONT_MIN_PX);
    }
}
