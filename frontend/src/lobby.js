// The lobby: the story form derives the slug from the title until the writer edits it.
// The page is usable before this script runs, so a title typed (or a form restored by the
// browser) before then is caught up at start: a slug that is empty or still the title's own
// counts as untouched.

export function startLobby() {
  const title = document.querySelector("#id_new-title");
  const slug = document.querySelector("#id_new-slug");
  if (!title || !slug) return;
  let touched = slug.value !== "" && slug.value !== slugify(title.value);
  if (!touched) slug.value = slugify(title.value);
  slug.addEventListener("input", () => {
    touched = slug.value !== "";
  });
  title.addEventListener("input", () => {
    if (touched) return;
    slug.value = slugify(title.value);
  });
}

export function slugify(text) {
  return String(text)
    .normalize("NFKD")
    .replace(/[\u0300-\u036f]/g, "")
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, "-")
    .replace(/^-+|-+$/g, "")
    .slice(0, 64);
}
