//! Where each publisher's tile goes on the canvas.
//!
//! A pure function of the number of tiles and the canvas size. Tiles share the canvas as the
//! grid allows, but are never taller than wide (a camera cropped to fill a taller tile would
//! lose too much of its sides); how each source fills its tile is `framing`'s business, so a
//! tile rectangle is all the engine needs.

/// Width and height in pixels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Size {
    pub width: u32,
    pub height: u32,
}

/// A tile on the canvas, in pixels, origin top left.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rect {
    pub x: u32,
    pub y: u32,
    pub width: u32,
    pub height: u32,
}

impl Rect {
    pub fn intersects(&self, other: &Rect) -> bool {
        self.x < other.x + other.width
            && other.x < self.x + self.width
            && self.y < other.y + other.height
            && other.y < self.y + self.height
    }
}

/// Columns and rows for `n` tiles: as square as possible, wider than tall when not.
pub fn grid_shape(n: usize) -> (u32, u32) {
    if n == 0 {
        return (0, 0);
    }
    let mut cols = 1u32;
    while (cols as usize) * (cols as usize) < n {
        cols += 1;
    }
    let rows = n.div_ceil(cols as usize) as u32;
    (cols, rows)
}

/// Tile rectangles for `n` tiles in reading order. The last row, when not full, is centred.
/// Sizes and positions are even, because the engine composites 4:2:0 video.
pub fn grid(n: usize, canvas: Size) -> Vec<Rect> {
    let (cols, rows) = grid_shape(n);
    if n == 0 || canvas.width < 2 * cols || canvas.height < 2 * rows {
        return Vec::new();
    }
    let tile_w = even(canvas.width / cols);
    let tile_h = if n == 1 { even(canvas.height / rows) } else { even((canvas.height / rows).min(tile_w)) };
    // Centre the whole grid so rounding slack is split between both sides.
    let x0 = even((canvas.width - tile_w * cols) / 2);
    let y0 = even((canvas.height - tile_h * rows) / 2);
    (0..n as u32)
        .map(|i| {
            let row = i / cols;
            let col = i % cols;
            let in_row = if row + 1 == rows { n as u32 - row * cols } else { cols };
            let row_x0 = x0 + even((cols - in_row) * tile_w / 2);
            Rect { x: row_x0 + col * tile_w, y: y0 + row * tile_h, width: tile_w, height: tile_h }
        })
        .collect()
}

fn even(v: u32) -> u32 {
    v & !1
}

/// How the room's picture is arranged.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum LayoutMode {
    /// Everyone the same size.
    #[default]
    Grid,
    /// The active speaker large, the others in a strip below.
    Speaker,
}

/// One thing to show: a camera (or name tile) or a shared screen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shown {
    pub screen: bool,
    pub active_speaker: bool,
    /// Who stays in the picture when not everyone fits: lower first (screens and the active
    /// speaker always do). Ties keep the earlier one.
    pub priority: u32,
}

/// Tiles in the strip under the large tile; more are left out of the picture.
pub const STRIP_MAX: usize = 8;
/// Share of the canvas height the large tile takes in speaker and presentation layouts.
const STAGE_SHARE: f64 = 0.78;

/// The `room` most important of `candidates` (indexes into `shown`), in their original order so
/// that tiles keep their places when someone else enters or leaves the picture.
fn keep(shown: &[Shown], candidates: impl Iterator<Item = usize>, room: usize) -> Vec<usize> {
    let mut chosen: Vec<usize> = candidates.collect();
    if chosen.len() > room {
        chosen.sort_by_key(|&i| (!shown[i].screen, !shown[i].active_speaker, shown[i].priority, i));
        chosen.truncate(room);
        chosen.sort_unstable();
    }
    chosen
}

/// Where each of `shown` goes, in the same order; `None` = not in the picture. The grid holds at
/// most `max_tiles`. A shared screen switches to the presentation layout (the first screen
/// large, others in the strip), whatever `mode` says; stopping the share returns to `mode`.
pub fn arrange(mode: LayoutMode, shown: &[Shown], canvas: Size, max_tiles: usize) -> Vec<Option<Rect>> {
    let stage = shown
        .iter()
        .position(|s| s.screen)
        .or_else(|| (mode == LayoutMode::Speaker && shown.len() > 1).then(|| shown.iter().position(|s| s.active_speaker).unwrap_or(0)));
    let Some(stage) = stage else {
        let chosen = keep(shown, 0..shown.len(), max_tiles.max(1));
        let mut out = vec![None; shown.len()];
        for (&i, rect) in chosen.iter().zip(grid(chosen.len(), canvas)) {
            out[i] = Some(rect);
        }
        return out;
    };
    if shown.len() == 1 {
        return vec![Some(Rect { x: 0, y: 0, width: even(canvas.width), height: even(canvas.height) })];
    }
    let stage_h = even((f64::from(canvas.height) * STAGE_SHARE) as u32);
    let strip_h = even(canvas.height - stage_h);
    let strip = keep(shown, (0..shown.len()).filter(|&i| i != stage), STRIP_MAX);
    // Strip tiles keep the canvas shape if they fit, else share the width.
    let ideal_w = even((u64::from(strip_h) * u64::from(canvas.width) / u64::from(canvas.height.max(1))) as u32);
    let tile_w = even(ideal_w.min(canvas.width / strip.len().max(1) as u32));
    let strip_x0 = even((canvas.width - tile_w * strip.len() as u32) / 2);
    let mut out = vec![None; shown.len()];
    out[stage] = Some(Rect { x: 0, y: 0, width: even(canvas.width), height: stage_h });
    for (k, &i) in strip.iter().enumerate() {
        out[i] = Some(Rect { x: strip_x0 + k as u32 * tile_w, y: stage_h, width: tile_w, height: strip_h });
    }
    out
}

#[cfg(test)]
mod arrange_tests {
    use super::*;

    const HD: Size = Size { width: 1280, height: 720 };

    fn cameras(n: usize, active: usize) -> Vec<Shown> {
        (0..n).map(|i| Shown { screen: false, active_speaker: i == active, priority: u32::MAX }).collect()
    }

    fn check_sane(rects: &[Option<Rect>], what: &str) {
        let placed: Vec<Rect> = rects.iter().flatten().copied().collect();
        for (i, r) in placed.iter().enumerate() {
            assert!(r.width >= 2 && r.height >= 2, "{what}: degenerate {r:?}");
            assert!(r.x + r.width <= HD.width && r.y + r.height <= HD.height, "{what}: outside {r:?}");
            assert_eq!((r.x | r.y | r.width | r.height) & 1, 0, "{what}: odd {r:?}");
            for s in &placed[i + 1..] {
                assert!(!r.intersects(s), "{what}: {r:?} overlaps {s:?}");
            }
        }
    }

    #[test]
    fn every_layout_is_sane_for_typical_room_sizes() {
        for n in [1, 2, 5, 16, 50] {
            for mode in [LayoutMode::Grid, LayoutMode::Speaker] {
                let mut shown = cameras(n, n / 2);
                let rects = arrange(mode, &shown, HD, 25);
                assert_eq!(rects.len(), n);
                check_sane(&rects, &format!("{mode:?} n={n}"));
                // With a screen share on top of the cameras.
                shown.push(Shown { screen: true, active_speaker: false, priority: u32::MAX });
                let rects = arrange(mode, &shown, HD, 25);
                check_sane(&rects, &format!("{mode:?} n={n} + screen"));
                let screen = rects[n].expect("the screen is always shown");
                assert_eq!(screen.width, 1280, "screen takes the full width");
                assert!(screen.height >= 560, "screen is large: {screen:?}");
                let shown_count = rects.iter().flatten().count();
                assert_eq!(shown_count, (n + 1).min(STRIP_MAX + 1), "n={n}");
            }
        }
    }

    #[test]
    fn a_full_grid_keeps_the_recent_speakers_in_their_places() {
        // 50 cameras, room for 16: the active speaker (no. 40) and the 20 who spoke (priority
        // by recency, no. 49 most recent) compete; the rest never spoke.
        let mut shown = cameras(50, 40);
        for (rank, i) in (30..50).rev().enumerate() {
            shown[i].priority = rank as u32;
        }
        let rects = arrange(LayoutMode::Grid, &shown, HD, 16);
        check_sane(&rects, "grid of 16 out of 50");
        let visible: Vec<usize> = (0..50).filter(|&i| rects[i].is_some()).collect();
        assert_eq!(visible, (34..50).collect::<Vec<_>>(), "the 16 most recent speakers, 40 among them");
        assert_eq!(rects[34].unwrap().width, 320, "a 4 x 4 grid on 1280 x 720");
        // Reading order follows joining order, not priority.
        assert!(rects[34].unwrap().y <= rects[49].unwrap().y && rects[34].unwrap().x < rects[35].unwrap().x);
        // Nobody spoke yet: the first 16 to join, and the active speaker whatever its rank.
        let rects = arrange(LayoutMode::Grid, &cameras(50, 40), HD, 16);
        let visible: Vec<usize> = (0..50).filter(|&i| rects[i].is_some()).collect();
        assert_eq!(visible, (0..15).chain([40]).collect::<Vec<_>>());
    }

    #[test]
    fn the_strip_keeps_the_recent_speakers_too() {
        let mut shown = cameras(20, 0);
        shown[19].priority = 0;
        shown[12].priority = 1;
        let rects = arrange(LayoutMode::Speaker, &shown, HD, 25);
        let visible: Vec<usize> = (0..20).filter(|&i| rects[i].is_some()).collect();
        assert_eq!(visible, vec![0, 1, 2, 3, 4, 5, 6, 12, 19]);
    }

    #[test]
    fn grid_shows_everyone_equally() {
        let rects = arrange(LayoutMode::Grid, &cameras(5, 2), HD, 25);
        assert!(rects.iter().all(|r| r.is_some_and(|r| r.width == rects[0].unwrap().width)));
    }

    #[test]
    fn speaker_layout_puts_the_active_speaker_large() {
        let rects = arrange(LayoutMode::Speaker, &cameras(5, 3), HD, 25);
        let big = rects[3].unwrap();
        assert_eq!((big.x, big.y, big.width), (0, 0, 1280));
        assert!(rects.iter().enumerate().filter(|(i, _)| *i != 3).all(|(_, r)| r.unwrap().height < big.height / 3));
    }

    #[test]
    fn speaker_layout_without_a_speaker_takes_the_first() {
        let shown = vec![Shown { screen: false, active_speaker: false, priority: u32::MAX }; 3];
        let rects = arrange(LayoutMode::Speaker, &shown, HD, 25);
        assert_eq!(rects[0].unwrap().width, 1280);
    }

    #[test]
    fn a_lone_participant_fills_the_canvas_in_every_mode() {
        for mode in [LayoutMode::Grid, LayoutMode::Speaker] {
            assert_eq!(arrange(mode, &cameras(1, 0), HD, 25)[0], Some(Rect { x: 0, y: 0, width: 1280, height: 720 }));
        }
    }

    #[test]
    fn stopping_a_share_returns_to_the_chosen_layout() {
        let mut shown = cameras(4, 0);
        let before = arrange(LayoutMode::Grid, &shown, HD, 25);
        shown.push(Shown { screen: true, active_speaker: false, priority: u32::MAX });
        assert_ne!(arrange(LayoutMode::Grid, &shown, HD, 25)[..4], before[..]);
        shown.pop();
        assert_eq!(arrange(LayoutMode::Grid, &shown, HD, 25), before);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HD: Size = Size { width: 1280, height: 720 };

    #[test]
    fn shapes_are_near_square() {
        assert_eq!(grid_shape(1), (1, 1));
        assert_eq!(grid_shape(2), (2, 1));
        assert_eq!(grid_shape(3), (2, 2));
        assert_eq!(grid_shape(4), (2, 2));
        assert_eq!(grid_shape(5), (3, 2));
        assert_eq!(grid_shape(10), (4, 3));
        assert_eq!(grid_shape(16), (4, 4));
        assert_eq!(grid_shape(50), (8, 7));
    }

    #[test]
    fn one_tile_fills_the_canvas() {
        assert_eq!(grid(1, HD), vec![Rect { x: 0, y: 0, width: 1280, height: 720 }]);
    }

    #[test]
    fn tiles_are_inside_even_and_disjoint_for_every_count() {
        for canvas in [HD, Size { width: 640, height: 360 }, Size { width: 1920, height: 1080 }] {
            for n in 1..=50 {
                let tiles = grid(n, canvas);
                assert_eq!(tiles.len(), n);
                for (i, t) in tiles.iter().enumerate() {
                    assert!(t.x + t.width <= canvas.width, "n={n} tile {i} {t:?}");
                    assert!(t.y + t.height <= canvas.height, "n={n} tile {i} {t:?}");
                    assert!(t.width > 0 && t.height > 0);
                    assert_eq!((t.x | t.y | t.width | t.height) & 1, 0, "odd {t:?}");
                    for u in &tiles[i + 1..] {
                        assert!(!t.intersects(u), "n={n}: {t:?} overlaps {u:?}");
                    }
                }
            }
        }
    }

    #[test]
    fn tiles_keep_the_canvas_shape_in_square_grids() {
        for n in [4, 9, 16] {
            for t in grid(n, HD) {
                let ratio = t.width as f64 / t.height as f64;
                assert!((ratio - 16.0 / 9.0).abs() < 0.02, "n={n} {t:?}");
            }
        }
    }

    #[test]
    fn two_side_by_side_are_square_and_cover_most_of_the_canvas() {
        let tiles = grid(2, HD);
        assert_eq!(tiles, vec![Rect { x: 0, y: 40, width: 640, height: 640 }, Rect { x: 640, y: 40, width: 640, height: 640 }]);
        let covered: u32 = tiles.iter().map(|t| t.width * t.height).sum();
        assert!(f64::from(covered) / f64::from(HD.width * HD.height) >= 0.8);
    }

    #[test]
    fn no_tile_is_taller_than_wide() {
        for n in 2..=25 {
            for t in grid(n, HD) {
                assert!(t.height <= t.width, "n={n} {t:?}");
            }
        }
    }

    #[test]
    fn incomplete_last_row_is_centred() {
        let tiles = grid(3, HD);
        assert_eq!(tiles[0], Rect { x: 0, y: 0, width: 640, height: 360 });
        assert_eq!(tiles[1], Rect { x: 640, y: 0, width: 640, height: 360 });
        assert_eq!(tiles[2], Rect { x: 320, y: 360, width: 640, height: 360 });
    }

    #[test]
    fn too_small_a_canvas_gives_no_tiles_rather_than_zero_sizes() {
        assert!(grid(50, Size { width: 8, height: 8 }).is_empty());
        assert!(grid(0, HD).is_empty());
    }
}
