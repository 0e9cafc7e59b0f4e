from pipeline import Done, Next, Workflow, get_run, start_run


def test_two_steps_inline(sqlite_db, inline):
    flow = Workflow("smoke", version=1)

    @flow.step(start=True)
    def a(ctx):
        ctx.state["a"] = 1
        return Next("b")

    @flow.step
    def b(ctx):
        return Done({"a": ctx.state["a"]})

    rid = start_run("smoke", {})
    inline.drain()
    assert get_run(rid).result == {"a": 1}
