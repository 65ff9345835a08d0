use wyrmhole::Model;

#[derive(Model)]
struct User {
    id: i32,
}

#[derive(Model)]
struct Profile {
    // The key of a row cannot also point at another model's row.
    #[wyrm(belongs_to = User)]
    id: i32,
    #[wyrm(belongs_to = "User")]
    user_id: i32,
    #[wyrm(belongs_to = 3)]
    manager_id: i32,
    #[wyrm(belongs_to = User, belongs_to = User)]
    friend_id: i32,
}

fn main() {}
