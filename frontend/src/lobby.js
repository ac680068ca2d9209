// The lobby: the story form derives the slug from the title until the writer edits it.

export function startLobby() {
  const title = document.querySelector("#id_new-title");
  const slug = document.querySelector("#id_new-slug");
  if (!title || !slug) return;
  let touched = slug.value !== "";
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
