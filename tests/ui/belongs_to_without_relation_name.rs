use wyrmhole::Model;

#[derive(Model)]
struct User {
    id: i32,
}

#[derive(Model)]
struct TodoList {
    id: i32,
    // Not `owner_id` and no `relation = "..."`: filters could not name it.
    #[wyrm(belongs_to = User)]
    owner: i32,
}

fn main() {}
