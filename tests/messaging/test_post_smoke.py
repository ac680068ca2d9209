def test_post_and_read(make_user, make_story, api):
    alice = make_user("alice")
    story = make_story(alice)
    client = api(alice)
    r = client.post(f"/api/stories/{story.slug}/channels/general/messages",
                    {"msg_type": "text", "payload": {"text": "hi"}}, format="json")
    assert r.status_code == 201, r.content
    assert r.json()["seq"] == 1
    r = client.get(f"/api/stories/{story.slug}/channels/general/messages?after=0")
    assert [m["payload"]["text"] for m in r.json()["results"]] == ["hi"]
