//! Where each publisher's tile goes on the canvas.
//!
//! A pure function of the number of tiles and the canvas size. Tiles keep the canvas's shape as
//! far as the grid allows; sources of another aspect ratio are letterboxed inside their tile by
//! the media engine (black bars), so a tile rectangle is all the engine needs.

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
    let tile_h = even(canvas.height / rows);
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
