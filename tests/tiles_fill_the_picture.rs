//! The picture uses its canvas: two cameras side by side fill most of it (cropped around their
//! centre to the tile's shape, not letterboxed), each name is drawn inside its own tile, and a
//! shared screen is shown whole with its presenter's name inside the screen's rectangle. Read
//! at full size from the room's broadcast (the same composite every viewer gets).

mod support;

use std::time::Duration;

use serde_json::json;
use support::analysis::coverage;
use support::client::{self, Publisher, Rgb, Source, Viewer, BLUE, GREEN, RED};
use support::ffmpeg;
use support::server::Server;
use support::wait_for;
use support::ws::Control;

const T: Duration = Duration::from_secs(30);
const TOLERANCE: i32 = 40;

/// A decoded picture at full size.
struct Picture {
    width: usize,
    height: usize,
    rgb: Vec<u8>,
}

/// A rectangle in picture pixels, inclusive.
#[derive(Clone, Copy, Debug)]
struct Bounds {
    x0: usize,
    y0: usize,
    x1: usize,
    y1: usize,
}

impl Bounds {
    fn contains(&self, x: usize, y: usize) -> bool {
        (self.x0..=self.x1).contains(&x) && (self.y0..=self.y1).contains(&y)
    }
}

impl Picture {
    fn px(&self, x: usize, y: usize) -> (i32, i32, i32) {
        let i = (y * self.width + x) * 3;
        (i32::from(self.rgb[i]), i32::from(self.rgb[i + 1]), i32::from(self.rgb[i + 2]))
    }

    fn is(&self, x: usize, y: usize, c: Rgb) -> bool {
        let (r, g, b) = self.px(x, y);
        (r - i32::from(c.0)).abs() <= TOLERANCE && (g - i32::from(c.1)).abs() <= TOLERANCE && (b - i32::from(c.2)).abs() <= TOLERANCE
    }

    /// White or amber (the active speaker's): the names' letters, unlike any tile's colour.
    fn is_text(&self, x: usize, y: usize) -> bool {
        let (r, g, _) = self.px(x, y);
        r >= 190 && g >= 150
    }

    fn share(&self, colours: &[Rgb]) -> f64 {
        let n = self.points().filter(|&(x, y)| colours.iter().any(|&c| self.is(x, y, c))).count();
        n as f64 / (self.width * self.height) as f64
    }

    /// Where `colour` is, as one rectangle (a tile, or the picture inside it).
    fn bounds(&self, colour: Rgb, rows: std::ops::Range<usize>) -> Option<Bounds> {
        let mut b: Option<Bounds> = None;
        for (x, y) in self.points().filter(|&(x, y)| rows.contains(&y) && self.is(x, y, colour)) {
            let r = b.get_or_insert(Bounds { x0: x, y0: y, x1: x, y1: y });
            (r.x0, r.y0, r.x1, r.y1) = (r.x0.min(x), r.y0.min(y), r.x1.max(x), r.y1.max(y));
        }
        b
    }

    fn text(&self, rows: std::ops::Range<usize>) -> Vec<(usize, usize)> {
        self.points().filter(|&(x, y)| rows.contains(&y) && self.is_text(x, y)).collect()
    }

    fn points(&self) -> impl Iterator<Item = (usize, usize)> + '_ {
        (0..self.height).flat_map(move |y| (0..self.width).map(move |x| (x, y)))
    }
}

/// The newest segment's first picture, from a segment that began after `after` (its name).
fn newest_picture(server: &Server, room: &str, after: Option<&str>) -> (String, Picture) {
    let playlist = format!("/hls/{room}/index.m3u8");
    let name = wait_for(T, "a new segment of the broadcast", || {
        let r = server.get(&playlist);
        let last = r.body.lines().rev().find(|l| l.ends_with(".ts")).map(str::to_string);
        match last {
            Some(l) if r.status == 200 && after.is_none_or(|a| seq(&l) > seq(a)) => Ok(l),
            _ => Err(format!("{} {:?}", r.status, last)),
        }
    });
    let (width, height, rgb) = ffmpeg::full_frame(&format!("http://{}/hls/{room}/{name}", server.addr)).expect("a picture");
    (name, Picture { width, height, rgb })
}

fn seq(segment: &str) -> u64 {
    segment.trim_end_matches(".ts").rsplit('-').next().and_then(|s| s.parse().ok()).unwrap_or(0)
}

/// Every letter in `rows` lies inside one of `inside`, and there are letters in each of them.
fn names_inside(p: &Picture, rows: std::ops::Range<usize>, inside: &[(&str, Bounds)]) {
    let text = p.text(rows.clone());
    let outside: Vec<&(usize, usize)> = text.iter().filter(|&&(x, y)| !inside.iter().any(|(_, b)| b.contains(x, y))).collect();
    assert!(outside.is_empty(), "{} letter pixels outside the pictures {inside:?} (rows {rows:?}), e.g. {:?}", outside.len(), &outside[..outside.len().min(5)]);
    for (what, b) in inside {
        let n = text.iter().filter(|&&(x, y)| b.contains(x, y)).count();
        // The name sits in the lower left: the letters are in the picture's bottom-left quarter.
        let low_left = text.iter().filter(|&&(x, y)| b.contains(x, y) && x < (b.x0 + b.x1) / 2 && y > (b.y0 + b.y1) / 2).count();
        eprintln!("{what}: {n} letter pixels, {low_left} in its lower left quarter, picture {b:?}");
        assert!(n >= 10 && low_left * 10 >= n * 9, "{what}'s name in its picture's lower left ({n} letter pixels, {low_left} there)");
    }
}

#[test]
fn cameras_fill_their_tiles_and_names_sit_inside_them() {
    client::init();
    let server = Server::start();
    let room = "kacheln";
    let (mut ada, ada_token, _key) = Control::join_first(server.addr, room, "Ada");
    let (_bo, _, bo_token) = Control::join(server.addr, room, "Bo");
    let wide = |colour, tone| Source { width: 640, height: 360, ..Source::new(colour, tone) };
    let _red = Publisher::start_as(server.addr, room, wide(RED, 440), Some(&ada_token));
    let _green = Publisher::start_as(server.addr, room, wide(GREEN, 660), Some(&bo_token));
    let viewer = Viewer::start(server.addr, room, Some(&ada_token));
    wait_for(T, "both cameras in the picture", || {
        let f = viewer.frame().ok_or("no frame")?;
        let (r, g) = (coverage(&f, RED, 40), coverage(&f, GREEN, 40));
        if r > 0.3 && g > 0.3 { Ok(()) } else { Err(format!("red {r:.3} green {g:.3}")) }
    });
    ada.send_json(&json!({"type": "set_broadcast", "on": true}));

    // Two 16:9 cameras side by side on a 16:9 canvas.
    let (first, p) = newest_picture(&server, room, None);
    let (red, green) = (p.share(&[RED]), p.share(&[GREEN]));
    eprintln!("{}x{}: red {red:.3}, green {green:.3}", p.width, p.height);
    assert!(red + green >= 0.8, "two cameras cover at least 80 % of the canvas: red {red:.3} + green {green:.3}");
    let all = 0..p.height;
    let (r, g) = (p.bounds(RED, all.clone()).expect("red"), p.bounds(GREEN, all.clone()).expect("green"));
    names_inside(&p, all, &[("Ada", r), ("Bo", g)]);

    // Bo shares a 4:3 screen: on the wide stage it is shown whole (bars left and right), and
    // Bo's name is inside the screen, not in the bars.
    let _screen = Publisher::share_screen(server.addr, room, Source { audio: false, width: 640, height: 480, ..Source::new(BLUE, 0) }, &bo_token);
    wait_for(T, "the screen on the stage", || {
        let f = viewer.frame().ok_or("no frame")?;
        let b = coverage(&f, BLUE, 40);
        if b > 0.3 { Ok(()) } else { Err(format!("blue {b:.3}")) }
    });
    // A segment that began after the screen was seen (the one being written may predate it).
    let (now, _) = newest_picture(&server, room, Some(&first));
    let (_, p) = newest_picture(&server, room, Some(&now));
    let blue = p.bounds(BLUE, 0..p.height).expect("the screen");
    let stage_rows = 0..blue.y1 + 1;
    eprintln!("the screen at {blue:?} in {}x{}", p.width, p.height);
    assert!(blue.x0 > p.width / 10 && blue.x1 < p.width * 9 / 10, "a 4:3 screen on the wide stage has bars: {blue:?}");
    names_inside(&p, stage_rows, &[("Bo's screen", blue)]);
    // The cameras in the strip below keep their names inside too.
    let strip = blue.y1 + 1..p.height;
    let (r, g) = (p.bounds(RED, strip.clone()).expect("red in the strip"), p.bounds(GREEN, strip.clone()).expect("green in the strip"));
    names_inside(&p, strip, &[("Ada in the strip", r), ("Bo in the strip", g)]);
}
