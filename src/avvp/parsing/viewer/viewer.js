/* The avvp viewer (inlined into each page by avvp.parsing.viewer.page): the list of parsed videos,
 * and for the chosen one its video, its timeline (classes x audio, visual, audio-visual lanes;
 * predicted solid, ground truth hatched, the colours of the PNG timelines) with a playhead that
 * follows the video, and a class's probabilities on demand. Everything comes from the JSON element
 * #avvp-data; every name is written with textContent or as an attribute value, never as markup. */
"use strict";
(function () {
  const DATA = JSON.parse(document.getElementById("avvp-data").textContent);
  const SVG_NS = "http://www.w3.org/2000/svg";
  const VIDEOS = DATA.videos;
  const LANES = DATA.lanes;
  const LAYOUT = {left: 190, right: 92, top: 6, row: 54, lane: 15, axis: 34};
  const CURVES = {height: 190, top: 10, axis: 30};
  const state = {order: [], current: -1, sort: DATA.scored ? {key: "f", dir: 1} : {key: "name", dir: 1},
                 filter: "", curveClass: null, time: 0, rows: []};
  const viewer = window.avvpViewer = {listedMs: null, state: state};

  // --- building blocks ---------------------------------------------------------------------------
  function attrs(node, values) {
    for (const [k, v] of Object.entries(values || {})) if (v !== null && v !== undefined) node.setAttribute(k, String(v));
    return node;
  }
  function el(tag, values, ...children) {  // strings become text nodes
    const node = attrs(document.createElement(tag), values);
    node.append(...children.filter(c => c !== null && c !== undefined));
    return node;
  }
  function svg(tag, values, text) {
    const node = attrs(document.createElementNS(SVG_NS, tag), values);
    if (text !== undefined) node.textContent = text;
    return node;
  }
  function seconds(t) { return t < 60 ? `${t.toFixed(1)} s` : `${Math.floor(t / 60)}:${(t % 60).toFixed(1).padStart(4, "0")}`; }
  function clock(t) { return `${Math.floor(t / 60)}:${(t % 60).toFixed(2).padStart(5, "0")}`; }
  function percent(x) { return x === null || x === undefined ? "–" : x.toFixed(1); }
  function setupOf(v) { return DATA.setups[v.setup]; }
  function classesOf(v) { return setupOf(v).classes; }
  function fileLink(name) { return encodeURIComponent(name); }
  function short(name, n) { return name.length > n ? name.slice(0, n - 1) + "…" : name; }

  // --- the page's frame --------------------------------------------------------------------------
  const scoredCount = VIDEOS.filter(v => v.score).length;
  const meanF = scoredCount ? VIDEOS.reduce((s, v) => s + (v.score ? v.score.f : 0), 0) / scoredCount : null;
  const summary = `${VIDEOS.length} video${VIDEOS.length === 1 ? "" : "s"}` +
    (scoredCount ? ` · ${scoredCount} with ground truth · mean segment-level Type@AV F ${percent(meanF)} %` : "");
  const keys = el("span", {class: "keys"}, el("kbd", {}, "space"), " play/pause  ", el("kbd", {}, "←"), el("kbd", {}, "→"),
                  " 1 s  ", el("kbd", {}, "↑"), el("kbd", {}, "↓"), " previous/next video");
  document.body.append(el("header", {class: "top"}, el("h1", {}, `avvp viewer · ${DATA.title}`),
                          el("span", {class: "summary"}, summary), keys));

  const filterBox = el("input", {type: "search", placeholder: "filter by name", "aria-label": "filter videos by name"});
  const tbody = el("tbody");
  const columns = [
    {key: "name", label: "video", num: false, value: v => v.name.toLowerCase(),
     title: "the video's file name"},
    {key: "duration", label: "length", num: true, value: v => v.duration, text: v => seconds(v.duration),
     title: "length in seconds"},
    {key: "events", label: "events", num: true, value: v => v.events.length, text: v => String(v.events.length),
     title: "predicted events (audio, visual and audio-visual)"},
  ];
  if (DATA.scored) {
    columns.push({key: "f", label: "F %", num: true, value: v => v.score ? v.score.f : null,
                  text: v => percent(v.score && v.score.f),
                  title: "segment-level Type@AV F of this video (mean of audio, visual, audio-visual), as in the ten numbers"});
    columns.push({key: "errors", label: "errors", num: true, value: v => v.score ? v.score.errors : null,
                  text: v => v.score ? String(v.score.errors) : "–",
                  title: "wrong class-seconds: false positives plus misses, audio and visual lanes"});
  }
  const headRow = el("tr");
  const colgroup = el("colgroup");
  for (const col of columns) {
    colgroup.append(el("col", {class: col.num ? (col.key === "f" ? "num" : "num wide") : "name"}));
    const button = el("button", {type: "button", title: `${col.title}; click to sort`}, col.label);
    button.addEventListener("click", () => sortBy(col.key));
    headRow.append(el("th", {class: col.num ? "num" : null, "data-key": col.key}, button));
  }
  const table = el("table", {class: "videos"}, colgroup, el("thead", {}, headRow), tbody);
  const count = el("div", {class: "list-count"});
  document.body.append(el("aside", {class: "list"}, filterBox, el("div", {class: "list-scroll"}, table), count));

  const warning = el("p", {class: "warning", role: "alert", hidden: ""});
  const player = el("video", {controls: "", preload: "metadata", playsinline: ""});
  const absent = el("div", {class: "absent", hidden: ""});
  const facts = el("div", {class: "facts"});
  const timelineBox = el("div", {class: "timeline"});
  const legendBox = el("div", {class: "legend"});
  const curveSelect = el("select", {"aria-label": "class whose probabilities are drawn"});
  const curveButton = el("button", {type: "button"}, "show probabilities");
  const curvesBox = el("div", {class: "curves"});
  const curveLegend = el("div", {class: "legend"});
  const provenance = el("footer", {class: "provenance"});
  const main = el("main", {class: "view"},
    warning,
    el("div", {class: "stage"}, el("div", {class: "player"}, player, absent), facts),
    el("section", {class: "panel"}, el("h3", {}, "Timeline"), timelineBox, legendBox),
    el("section", {class: "panel"}, el("div", {class: "curve-controls"}, el("h3", {}, "Probabilities"), curveButton,
                                       curveSelect), curvesBox, curveLegend),
    provenance);
  document.body.append(main);

  // --- the list --------------------------------------------------------------------------------
  function makeRow(v, index) {
    const row = el("tr", {"data-index": index});
    for (const col of columns) {
      const text = col.text ? col.text(v) : v.name;
      const cell = el("td", {class: col.num ? "num" : null, title: col.num ? null : v.name}, text);
      if (!col.num && !v.src) {
        cell.classList.add("missing");
        cell.title = `${v.name} (video file not found)`;
      }
      row.append(cell);
    }
    row.addEventListener("click", () => select(index));
    return row;
  }
  function compare(a, b) {
    const col = columns.find(c => c.key === state.sort.key);
    const va = col.value(VIDEOS[a]), vb = col.value(VIDEOS[b]);
    if (va === null || vb === null) return va === vb ? 0 : va === null ? 1 : -1;  // unscored last, either way
    if (va < vb) return -state.sort.dir;
    if (va > vb) return state.sort.dir;
    if (state.sort.key === "f") {  // worst first: among equal F, most errors first
      const ea = VIDEOS[a].score.errors, eb = VIDEOS[b].score.errors;
      if (ea !== eb) return (eb - ea) * state.sort.dir;
    }
    return VIDEOS[a].name < VIDEOS[b].name ? -1 : VIDEOS[a].name > VIDEOS[b].name ? 1 : 0;
  }
  function renderList() {
    const needle = state.filter.toLowerCase();
    const indices = VIDEOS.map((_, i) => i).filter(i => !needle || VIDEOS[i].name.toLowerCase().includes(needle));
    state.order = indices.sort(compare);
    const fragment = document.createDocumentFragment();
    for (const i of state.order) fragment.append(state.rows[i]);
    tbody.replaceChildren(fragment);
    for (const th of headRow.children) {
      th.setAttribute("aria-sort", th.dataset.key === state.sort.key ? (state.sort.dir > 0 ? "ascending" : "descending") : "none");
    }
    count.textContent = `${state.order.length} of ${VIDEOS.length} shown` +
      (state.sort.key === "f" && state.sort.dir > 0 ? " · worst first" : "");
  }
  function sortBy(key) {
    state.sort = state.sort.key === key ? {key, dir: -state.sort.dir} : {key, dir: 1};
    renderList();
  }
  filterBox.addEventListener("input", () => { state.filter = filterBox.value; renderList(); });

  // --- time --------------------------------------------------------------------------------------
  function current() { return VIDEOS[state.current]; }
  function hasPlayer() { return state.current >= 0 && !!current().src; }
  function now() { return hasPlayer() ? player.currentTime : state.time; }
  function seek(t) {
    const v = current();
    t = Math.max(0, Math.min(t, v.duration));
    if (hasPlayer()) player.currentTime = t; else state.time = t;
    drawPlayheads();
  }
  function togglePlay() {
    if (!hasPlayer()) return;
    if (player.paused) player.play().catch(() => {}); else player.pause();
  }
  function drawPlayheads() {
    const t = now();
    for (const line of document.querySelectorAll("svg.chart .playhead")) {
      const x = line.ownerSVGElement.avvpX(t);
      line.setAttribute("x1", x); line.setAttribute("x2", x);
    }
    const shown = document.querySelector(".facts .clock");
    if (shown) shown.textContent = `${clock(t)} / ${clock(current().duration)}`;
  }
  function follow() {  // the playhead follows the video frame by frame while it plays
    drawPlayheads();
    if (!player.paused) requestAnimationFrame(follow);
  }
  for (const name of ["timeupdate", "seeked", "seeking", "loadedmetadata"]) player.addEventListener(name, drawPlayheads);
  player.addEventListener("play", () => requestAnimationFrame(follow));
  player.addEventListener("error", () => {
    absent.hidden = false;
    absent.textContent = `the video could not be played: ${current().path}`;
  });

  // --- the time axis shared by the timeline and the curves ----------------------------------------
  function scale(width, duration) {
    const plot = Math.max(50, width - LAYOUT.left - LAYOUT.right);
    return t => LAYOUT.left + (t / duration) * plot;
  }
  function tickStep(duration, plot) {
    for (const step of [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600]) {
      if (plot / (duration / step) >= 34) return step;
    }
    return 7200;
  }
  function axis(chart, v, x, top, bottom) {
    const step = tickStep(v.duration, x(v.duration) - x(0));
    for (let t = 0; t <= v.duration + 1e-9; t += step) {
      chart.append(svg("line", {x1: x(t), x2: x(t), y1: top, y2: bottom, stroke: "#e5e5e5", class: "tick", "data-t": t}));
      chart.append(svg("text", {x: x(t), y: bottom + 14, "text-anchor": "middle", class: "tick"}, String(t)));
    }
    const edges = [];
    for (let e = DATA.window; e < Math.ceil(v.duration); e += DATA.window) edges.push(e);
    if (edges.length < DATA.maxEdges) {
      for (const e of edges) chart.append(svg("line", {x1: x(e), x2: x(e), y1: top, y2: bottom, stroke: "#737373",
                                                       "stroke-dasharray": "5 3", "stroke-width": 1}));
    }
    chart.append(svg("line", {x1: x(0), x2: x(v.duration), y1: bottom, y2: bottom, stroke: "#888"}));
    return edges;
  }
  function newChart(width, height, x) {
    const chart = svg("svg", {class: "chart", width, height, viewBox: `0 0 ${width} ${height}`});
    chart.avvpX = x;
    return chart;
  }
  function playhead(chart, top, bottom) {
    chart.append(svg("line", {class: "playhead", y1: top, y2: bottom, x1: 0, x2: 0}));
  }

  // --- the timeline ------------------------------------------------------------------------------
  function hatch(defs, lane) {
    const colour = DATA.colours[LANES[lane]];
    const pattern = svg("pattern", {id: `hatch-${lane}`, patternUnits: "userSpaceOnUse", width: 6, height: 6,
                                    patternTransform: "rotate(45)"});
    pattern.append(svg("rect", {width: 6, height: 6, fill: colour, "fill-opacity": 0.3}),
                   svg("line", {x1: 1, y1: 0, x2: 1, y2: 6, stroke: colour, "stroke-width": 1.6, "stroke-opacity": 0.85}));
    defs.append(pattern);
  }
  function shownClasses(v) {
    const present = new Set(v.events.map(e => e[0]).concat((v.truth || []).map(e => e[0])));
    return [...present].sort((a, b) => a - b);
  }
  function bar(chart, v, e, y, height, truth) {
    const [c, m, onset, offset, score] = e;
    const x = chart.avvpX, colour = DATA.colours[LANES[m]];
    const rect = svg("rect", {class: `bar ${truth ? "truth" : "predicted"}`, x: x(onset), y, height,
                              width: Math.max(1, x(offset) - x(onset)), "data-onset": onset, "data-offset": offset,
                              fill: truth ? `url(#hatch-${m})` : colour, "fill-opacity": truth ? 1 : 0.9,
                              stroke: colour, "stroke-width": truth ? 0.8 : 0});
    const what = `${classesOf(v)[c]} · ${DATA.laneNames[LANES[m]]} · ${onset}–${offset} s`;
    rect.append(svg("title", {}, truth ? `${what} (ground truth)` : `${what} · score ${score.toFixed(3)}`));
    rect.addEventListener("click", () => seek(onset));
    chart.append(rect);
  }
  function drawTimeline(v) {
    const width = Math.max(400, timelineBox.clientWidth);
    const rows = shownClasses(v), n = Math.max(1, rows.length), L = LAYOUT;
    const bottom = L.top + n * L.row, height = bottom + L.axis;
    const x = scale(width, v.duration);
    const chart = newChart(width, height, x);
    const defs = svg("defs");
    LANES.forEach((_, lane) => hatch(defs, lane));
    chart.append(defs);
    axis(chart, v, x, L.top, bottom);
    chart.append(svg("text", {x: (x(0) + x(v.duration)) / 2, y: height - 3, "text-anchor": "middle", class: "axis"},
                     "time in the video (s)"));
    const pad = (L.row - LANES.length * L.lane) / 2;
    const withTruth = v.truth !== null;
    rows.forEach((c, r) => {
      const top = L.top + r * L.row;
      if (r > 0) chart.append(svg("line", {x1: 0, x2: width, y1: top, y2: top, stroke: "#c8c8c8"}));
      const name = classesOf(v)[c];
      const label = svg("text", {class: "class", x: L.left - 8, y: top + L.row / 2 + 4, "text-anchor": "end"}, short(name, 26));
      label.append(svg("title", {}, `${name}: click for its probabilities`));
      label.addEventListener("click", () => showCurves(c));
      chart.append(label);
      LANES.forEach((lane, k) => chart.append(svg("text", {class: "lane", x: x(v.duration) + 6,
        y: top + pad + (k + 0.5) * L.lane + 4}, DATA.laneNames[lane])));
    });
    if (!rows.length) chart.append(svg("text", {x: (x(0) + x(v.duration)) / 2, y: L.top + L.row / 2, "text-anchor": "middle",
                                                fill: "#666"}, "no events"));
    const rowOf = new Map(rows.map((c, r) => [c, r]));
    const layers = [[v.events, false]].concat(withTruth ? [[v.truth, true]] : []);
    for (const [events, truth] of layers) {
      const h = L.lane * (withTruth ? 0.45 : 0.9);
      for (const e of events) {
        const y = L.top + rowOf.get(e[0]) * L.row + pad + e[1] * L.lane + (truth ? 0.45 * L.lane : 0) + 0.05 * L.lane;
        bar(chart, v, e, y, h, truth);
      }
    }
    playhead(chart, L.top, bottom);
    timelineBox.replaceChildren(chart);
    drawLegend(v, withTruth);
  }
  function swatch(lane, truth) {
    const box = svg("svg", {width: 26, height: 12});
    const colour = DATA.colours[LANES[lane]];
    if (truth) {
      const defs = svg("defs"); hatch(defs, lane); box.append(defs);
      defs.firstChild.id = `legend-hatch-${lane}`;
    }
    box.append(svg("rect", {x: 1, y: 1, width: 24, height: 10, stroke: colour, "stroke-width": truth ? 0.8 : 0,
                            fill: truth ? `url(#legend-hatch-${lane})` : colour, "fill-opacity": truth ? 1 : 0.9}));
    return box;
  }
  function legendEntry(graphics, text) { return el("span", {}, ...graphics, text); }
  function drawLegend(v, withTruth) {
    const entries = LANES.map((lane, k) => legendEntry([swatch(k, false)], DATA.laneNames[lane]));
    if (withTruth) {
      entries.push(legendEntry(LANES.map((_, k) => swatch(k, false)), "predicted (solid)"));
      entries.push(legendEntry(LANES.map((_, k) => swatch(k, true)), "ground truth (hatched)"));
    }
    const edges = Math.ceil(v.duration / DATA.window) - 1;
    if (edges > 0 && edges < DATA.maxEdges) {
      const dash = svg("svg", {width: 26, height: 12});
      dash.append(svg("line", {x1: 1, x2: 25, y1: 6, y2: 6, stroke: "#737373", "stroke-dasharray": "5 3"}));
      entries.push(legendEntry([dash], "10 s window edge"));
    }
    entries.push(legendEntry([], "· click a bar to jump to its onset, a class name for its probabilities"));
    legendBox.replaceChildren(...entries);
  }

  // --- the probabilities of one class ------------------------------------------------------------
  function probabilities(v) {  // bytes: frame (S, 2, C) then window (W, C), each 0..255
    if (!v.bytes) {
      const text = atob(v.probs);
      v.bytes = Uint8Array.from(text, ch => ch.charCodeAt(0));
    }
    return v.bytes;
  }
  function stepPath(values, x, y, spans) {
    return values.map((p, i) => `${i ? "L" : "M"}${x(spans[i][0])},${y(p)}H${x(spans[i][1])}`).join("");
  }
  function drawCurves(v) {
    const c = state.curveClass;
    if (c === null) { curvesBox.replaceChildren(); curveLegend.replaceChildren(); return; }
    const C = classesOf(v).length, S = v.segments, bytes = probabilities(v), t = setupOf(v).thresholds;
    const width = Math.max(400, curvesBox.clientWidth), H = CURVES, bottom = H.height - H.axis;
    const x = scale(width, v.duration), y = p => bottom - p * (bottom - H.top);
    const chart = newChart(width, H.height, x);
    axis(chart, v, x, H.top, bottom);
    for (const p of [0, 0.5, 1]) {
      chart.append(svg("text", {x: x(0) - 6, y: y(p) + 4, "text-anchor": "end", class: "tick"}, p.toFixed(1)));
    }
    chart.append(svg("text", {x: x(0) - 40, y: (H.top + bottom) / 2 + 4, "text-anchor": "end", class: "class"}, short(classesOf(v)[c], 22)));
    const seconds = Array.from({length: S}, (_, s) => [s, Math.min(s + 1, v.duration)]);
    const lines = [];
    for (let m = 0; m < 2; m++) {
      lines.push([seconds.map((_, s) => bytes[(s * 2 + m) * C + c] / 255), seconds, DATA.colours[LANES[m]], null]);
    }
    const windows = Array.from({length: v.windows}, (_, w) => [w * DATA.window, Math.min((w + 1) * DATA.window, v.duration)]);
    lines.push([windows.map((_, w) => bytes[S * 2 * C + w * C + c] / 255), windows, "#333", "1 0"]);
    for (const [threshold, dash, name] of [[t.frame, "6 3", "frame"], [t.global, "2 3", "video"]]) {
      chart.append(svg("line", {x1: x(0), x2: x(v.duration), y1: y(threshold), y2: y(threshold), stroke: "#777",
                                "stroke-dasharray": dash}));
      chart.append(svg("text", {x: x(v.duration) + 6, y: y(threshold) + (name === "frame" ? -3 : 11), class: "lane"},
                       `${name} ≥ ${threshold}`));
    }
    for (const [values, spans, colour, dash] of lines) {
      chart.append(svg("path", {d: stepPath(values, x, y, spans), fill: "none", stroke: colour, "stroke-width": dash ? 2.2 : 1.6,
                                "stroke-dasharray": dash}));
    }
    playhead(chart, H.top, bottom);
    curvesBox.replaceChildren(chart);
    const line = (colour, dash) => {
      const box = svg("svg", {width: 26, height: 12});
      box.append(svg("line", {x1: 1, x2: 25, y1: 6, y2: 6, stroke: colour, "stroke-width": 2, "stroke-dasharray": dash}));
      return box;
    };
    curveLegend.replaceChildren(
      legendEntry([line(DATA.colours.audio)], "audio frame probability (per second)"),
      legendEntry([line(DATA.colours.visual)], "visual frame probability (per second)"),
      legendEntry([line("#333")], "video probability (per 10 s window)"),
      legendEntry([line("#777", "6 3")], `frame threshold ${t.frame}`),
      legendEntry([line("#777", "2 3")], `video threshold ${t.global}`),
      legendEntry([], "· an event holds where both probabilities reach their thresholds"));
    drawPlayheads();
  }
  function fillCurveSelect(v) {
    const shown = new Set(shownClasses(v));
    curveSelect.replaceChildren(...classesOf(v).map((name, c) => el("option", {value: c}, shown.has(c) ? name : `${name} (no event)`)));
    if (state.curveClass !== null && state.curveClass < classesOf(v).length) curveSelect.value = String(state.curveClass);
  }
  function showCurves(c) {
    state.curveClass = c;
    curveSelect.value = String(c);
    curveButton.textContent = "hide probabilities";
    drawCurves(current());
  }
  curveButton.addEventListener("click", () => {
    if (state.curveClass === null) {
      const shown = shownClasses(current());
      showCurves(shown.length ? shown[0] : 0);
    } else {
      state.curveClass = null;
      curveButton.textContent = "show probabilities";
      drawCurves(current());
    }
  });
  curveSelect.addEventListener("change", () => showCurves(Number(curveSelect.value)));

  // --- the chosen video --------------------------------------------------------------------------
  function drawFacts(v) {
    const setup = setupOf(v);
    const truthCount = v.truth ? v.truth.length : null;
    const parts = [el("h2", {}, v.name), el("p", {class: "clock"}, "")];
    parts.push(el("p", {}, `${seconds(v.duration)} · ${v.windows} window${v.windows === 1 ? "" : "s"} of 10 s` +
                  (v.hasAudio ? "" : " · no audio track (the audio lanes are silence)")));
    parts.push(el("p", {}, `${v.events.length} predicted event${v.events.length === 1 ? "" : "s"}` +
                  (truthCount === null ? " · no ground truth" : ` · ${truthCount} annotated`)));
    if (v.score) {
      const [a, vis, av] = v.score.streams;
      parts.push(el("p", {}, "segment-level F % of this video:"), el("table", {class: "scores"},
        el("tr", {}, el("th", {}, "audio"), el("th", {}, "visual"), el("th", {}, "audio-visual"), el("th", {}, "Type@AV")),
        el("tr", {}, el("td", {}, percent(a)), el("td", {}, percent(vis)), el("td", {}, percent(av)),
           el("td", {}, percent(v.score.f)))));
      parts.push(el("p", {}, `${v.score.errors} wrong class-second${v.score.errors === 1 ? "" : "s"} ` +
                    "(predicted but not annotated, or missed), audio and visual"));
    }
    for (const note of v.warnings) parts.push(el("p", {class: "note"}, `note: ${note}`));
    const base = v.json.replace(/\.json$/, "");
    parts.push(el("p", {}, "files: ", el("a", {href: fileLink(v.json)}, v.json), " · ",
                  el("a", {href: fileLink(`${base}.csv`)}, `${base}.csv`)));
    facts.replaceChildren(...parts);
    const warn = [setup.warning, setup.mismatch.length ? `extractor weights differ from the checkpoint's training (${setup.mismatch.join(", ")})` : null]
      .filter(Boolean);
    warning.hidden = !warn.length;
    warning.textContent = warn.length ? `WARNING: ${warn.join("; ")}` : "";
  }
  function drawProvenance(v) {
    const s = setupOf(v), t = s.thresholds;
    const weights = Object.entries(s.weights).map(([kind, w]) => `${kind}: ${w}`).join(", ") || "not recorded";
    provenance.replaceChildren(
      el("p", {}, `Model: ${s.model || "unknown"} · checkpoint `, el("code", {}, s.checkpoint || "not recorded"),
         s.sha256 ? ` (sha256 ${s.sha256.slice(0, 16)}…)` : ""),
      el("p", {}, `Extractor weights: ${weights}`),
      el("p", {}, `Thresholds: frame probability ≥ ${t.frame}, video (window) probability ≥ ${t.global}` +
                  " · the F here is the segment-level score of the LLP protocol on this video alone"),
      el("p", {}, `Page by avvp ${DATA.avvp} from ${VIDEOS.length} parse output${VIDEOS.length === 1 ? "" : "s"} ` +
                  "in this folder (rebuild: avvp view FOLDER)"));
  }
  function select(index) {
    if (index === state.current || index < 0 || index >= VIDEOS.length) return;
    if (state.current >= 0) state.rows[state.current].classList.remove("current");
    state.current = index;
    const v = VIDEOS[index];
    const row = state.rows[index];
    row.classList.add("current");
    row.setAttribute("aria-selected", "true");
    state.time = 0;
    player.pause();
    if (v.src) {
      player.hidden = false; absent.hidden = true;
      player.src = v.src;
    } else {
      player.removeAttribute("src"); player.load();
      player.hidden = true; absent.hidden = false;
      absent.textContent = `video file not found: ${v.path}`;
    }
    drawFacts(v);
    drawProvenance(v);
    fillCurveSelect(v);
    if (state.curveClass !== null && state.curveClass >= classesOf(v).length) state.curveClass = null;
    drawTimeline(v);
    drawCurves(v);
    drawPlayheads();
    try { history.replaceState(null, "", `#${encodeURIComponent(v.name)}`); } catch (err) { /* some file:// setups refuse */ }
  }
  function step(delta) {
    const at = state.order.indexOf(state.current);
    const next = state.order[Math.max(0, Math.min(state.order.length - 1, (at < 0 ? 0 : at + delta)))];
    if (next !== undefined) {
      select(next);
      state.rows[next].scrollIntoView({block: "nearest"});
    }
  }

  // --- keyboard ----------------------------------------------------------------------------------
  function typing(target) {
    return target && (target.tagName === "INPUT" || target.tagName === "SELECT" || target.tagName === "TEXTAREA");
  }
  window.addEventListener("keydown", event => {
    if (event.ctrlKey || event.metaKey || event.altKey || typing(event.target) || state.current < 0) return;
    const actions = {" ": togglePlay, ArrowLeft: () => seek(now() - 1), ArrowRight: () => seek(now() + 1),
                     ArrowUp: () => step(-1), ArrowDown: () => step(1)};
    const action = actions[event.key];
    if (!action) return;
    event.preventDefault();  // no scrolling, and no second toggle by the video's own controls
    event.stopPropagation();
    action();
  }, true);
  window.addEventListener("keyup", event => {  // a focused button would take the space as a click
    if (event.key === " " && !typing(event.target)) event.preventDefault();
  }, true);
  let resizing = null;
  window.addEventListener("resize", () => {
    clearTimeout(resizing);
    resizing = setTimeout(() => { if (state.current >= 0) { drawTimeline(current()); drawCurves(current()); drawPlayheads(); } }, 100);
  });

  // --- start -------------------------------------------------------------------------------------
  state.rows = VIDEOS.map(makeRow);
  renderList();
  const wanted = decodeURIComponent(location.hash.slice(1));
  const chosen = VIDEOS.findIndex(v => v.name === wanted);
  if (VIDEOS.length) select(chosen >= 0 ? chosen : state.order[0]);
  requestAnimationFrame(() => setTimeout(() => {  // after the list is drawn
    viewer.listedMs = performance.now();
    document.body.dataset.ready = "true";
  }, 0));
})();
